variable "name_prefix" {
  description = "Prefix of every resource name; must match TOILKIT_NAME_PREFIX of the services."
  type        = string
  default     = "toilkit"
}

variable "bucket_name" {
  description = "S3 bucket for large payloads, plans, logs and the event archive (globally unique). Default: <prefix>-artifacts-<account id>."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

# --------------------------------------------------------------------------- functions

variable "lambda_packages_dir" {
  description = "Where scripts/build-lambda.sh wrote the zips: one per function, toilkit-<function>.zip (gateway, detector, batch, notifier)."
  type        = string
  default     = "../../dist"
}

variable "gateway_snap_start" {
  description = "SnapStart on the gateway's published versions: a new sandbox resumes from a snapshot taken after the imports, the AWS clients and the built service, instead of starting them. Costs a little per GB cached and restored (docs/cost.md); false saves that and gives on-demand cold starts."
  type        = bool
  default     = true
}

variable "secrets_extension" {
  description = "Put the AWS Parameters and Secrets Lambda Extension's layer on every function: an on-demand cold start reads its first SSM secrets through it (plain HTTP on localhost) instead of opening an SSM client, which takes botocore off the gateway's first request. false: the functions read SSM with the SDK, as before."
  type        = bool
  default     = true
}

variable "secrets_extension_layer_arn" {
  description = "The extension layer's ARN (it differs by region and architecture). null (the default): the latest version AWS publishes for this region and var.lambda_architecture, read from its public SSM parameter /aws/service/aws-parameters-and-secrets-lambda-extension/{x86,arm64}/latest at plan time."
  type        = string
  default     = null

  validation {
    condition     = var.secrets_extension_layer_arn == null || can(regex("^arn:aws[a-z-]*:lambda:[a-z0-9-]+:[0-9]{12}:layer:AWS-Parameters-and-Secrets-Lambda-Extension(-Arm64)?:[0-9]+$", var.secrets_extension_layer_arn))
    error_message = "secrets_extension_layer_arn must be a version of the AWS-Parameters-and-Secrets-Lambda-Extension(-Arm64) layer, e.g. arn:aws:lambda:us-east-1:177933569100:layer:AWS-Parameters-and-Secrets-Lambda-Extension:99."
  }
}

variable "lambda_architecture" {
  description = "x86_64 or arm64; must match the --platform scripts/build-lambda.sh built the zip for."
  type        = string
  default     = "x86_64"

  validation {
    condition     = contains(["x86_64", "arm64"], var.lambda_architecture)
    error_message = "lambda_architecture must be x86_64 or arm64."
  }
}

variable "worker_memory_mb" {
  description = "Memory of each worker function (CPU grows with it)."
  type        = map(number)
  default = {
    detector = 256
    batch    = 512
    notifier = 512
  }
}

variable "worker_batch_size" {
  description = "Messages per invocation of each worker function."
  type        = map(number)
  default = {
    detector = 1
    batch    = 5
    notifier = 10
  }
}

variable "worker_max_concurrency" {
  description = "Concurrent invocations each event source mapping may start (2..1000). The notifier is kept low so Slack's per-channel rate is not exceeded."
  type        = map(number)
  default = {
    detector = 2
    batch    = 2
    notifier = 2
  }
}

variable "gateway_reserved_concurrency" {
  description = "Concurrent executions reserved for (and capping) the public gateway function. Lambda keeps 10 of the account's concurrency unreserved, so a new account (limit 10) must ask for a higher limit first."
  type        = number
  default     = 10
}

variable "gateway_memory_mb" {
  description = "Memory of the gateway function. More memory is more CPU: a faster cold start, which Slack's 3-second ack needs."
  type        = number
  default     = 1024
}

variable "log_retention_days" {
  description = "Days the functions' and builds' CloudWatch logs are kept."
  type        = number
  default     = 30
}

variable "catalog_file" {
  description = "Path of the batch command catalog inside the zip (scripts/build-lambda.sh --catalog puts it at catalog.yaml). Null: the demo catalog."
  type        = string
  default     = "catalog.yaml"
}

variable "notifier_default_channel" {
  description = "Slack channel id (C...) for notifications no route matches."
  type        = string
  default     = "#toilkit"
}

variable "notifier_ops_channel" {
  description = "Slack channel id (C...) where the notifier announces each message a service gave up on (what, why, and the `toilkit replay` command). Empty: not announced in Slack (the DLQ alarms still fire)."
  type        = string
  default     = ""
}

variable "drift_revert_button" {
  description = "Draw the Revert button on drift reports. Set it when the catalog has `drift.revert` (the command it requests); docs/drift-actions.md."
  type        = bool
  default     = false
}

variable "slash_command" {
  description = "The Slack slash command, as configured in the Slack app."
  type        = string
  default     = "/toil"
}

# --------------------------------------------------------------------------- secrets

variable "slack_bot_token_parameter" {
  description = "Name of the SSM SecureString parameter holding the Slack bot token (xoxb-...). Created with a placeholder; put the real value with aws ssm put-parameter --overwrite."
  type        = string
  default     = "/toilkit/slack/bot-token"
}

variable "slack_signing_secret_parameter" {
  description = "Name of the SSM SecureString parameter holding the Slack signing secret."
  type        = string
  default     = "/toilkit/slack/signing-secret"
}

# --------------------------------------------------------------------------- scans and runs

variable "drift_scan_timezone" {
  description = "IANA time zone of the daily drift scan's 07:00 (e.g. Europe/Paris)."
  type        = string
  default     = "UTC"
}

variable "drift_scan_schedule" {
  description = "EventBridge Scheduler expression of the daily drift scan (in drift_scan_timezone)."
  type        = string
  default     = "cron(0 7 * * ? *)"
}

variable "infra_repo_url" {
  description = "HTTPS clone URL of the Terraform repository the drift-scan build checks out (GitHub, GitHub Enterprise, GitLab, Bitbucket through infra_repo_connection_arn, or CodeCommit)."
  type        = string
}

variable "infra_repo_type" {
  description = "CodeBuild source type of infra_repo_url: GITHUB, GITHUB_ENTERPRISE, GITLAB, GITLAB_SELF_MANAGED, BITBUCKET or CODECOMMIT."
  type        = string
  default     = "GITHUB"

  validation {
    condition     = contains(["GITHUB", "GITHUB_ENTERPRISE", "GITLAB", "GITLAB_SELF_MANAGED", "BITBUCKET", "CODECOMMIT"], var.infra_repo_type)
    error_message = "infra_repo_type must be GITHUB, GITHUB_ENTERPRISE, GITLAB, GITLAB_SELF_MANAGED, BITBUCKET or CODECOMMIT."
  }
}

variable "infra_repo_connection_arn" {
  description = "ARN of the AWS CodeConnections connection the drift-scan build clones infra_repo_url with (create it once in the console, Developer Tools > Settings > Connections, and finish the handshake: status Available). Required unless infra_repo_type is CODECOMMIT."
  type        = string
  default     = null
}

variable "toilkit_wheel" {
  description = "The toilkit wheel the CodeBuild builds install (scripts/build-lambda.sh leaves it in dist/)."
  type        = string
  default     = "../../dist/toilkit-0.1.0-py3-none-any.whl"
}

variable "drift_scan_assume_role_arns" {
  description = "Roles the drift scan may assume to plan each state (read-only plan roles, one per account). Empty: it plans with its own role, which then needs read access added through drift_scan_policy_arns."
  type        = list(string)
  default     = []
}

variable "drift_scan_policy_arns" {
  description = "Managed policies attached to the drift-scan role (e.g. ReadOnlyAccess when it plans in this account)."
  type        = list(string)
  default     = []
}

variable "codebuild_image" {
  description = "Image of the drift-scan build (needs Python 3.11 and the AWS CLI)."
  type        = string
  default     = "aws/codebuild/amazonlinux2-x86_64-standard:5.0"
}

variable "batch_runner_image" {
  description = "Default image of batch runs; each catalog entry overrides it with its application's image (which needs python3)."
  type        = string
  default     = "aws/codebuild/amazonlinux2-x86_64-standard:5.0"
}

variable "batch_runner_vpc" {
  description = "Where batch runs execute (the production network): VPC id, private subnet ids and security group ids. Null: outside any VPC."
  type = object({
    vpc_id             = string
    subnet_ids         = list(string)
    security_group_ids = list(string)
  })
  default = null
}

variable "batch_runner_policy_arns" {
  description = "Managed policies attached to the batch-runner role: what the commands themselves may touch."
  type        = list(string)
  default     = []
}

variable "housekeeping_schedule" {
  description = "How often the batch function closes expired approvals and settles runs whose end event was lost."
  type        = string
  default     = "rate(15 minutes)"
}

variable "gateway_keep_warm_schedule" {
  description = "How often the scheduler calls the gateway's /healthz so a warm sandbox answers Slack (null: never; cold starts may then miss Slack's 3 s)."
  type        = string
  default     = "rate(5 minutes)"
}

# --------------------------------------------------------------------------- alarms

variable "alarm_emails" {
  description = "Email addresses subscribed to the alarms topic (each confirms once by mail). Empty: subscribe what you like to the alarm_topic_arn output (Chatbot, a pager)."
  type        = list(string)
  default     = []
}

variable "alarm_dlq_messages" {
  description = "A DLQ alarms when it holds more than this many messages (0: any message in a DLQ is worth a look; `toilkit replay` moves them back after a fix)."
  type        = number
  default     = 0
}

variable "alarm_queue_age_seconds" {
  description = "A queue alarms when its oldest message is older than this: its function is failing, throttled or stopped. A message that fails is retried about 5 times in ~5 minutes before its DLQ, so keep it above that."
  type        = number
  default     = 900
}

variable "alarm_failed_events" {
  description = "A worker service alarms when more handler attempts than this fail within 5 minutes (the EventsFailed metric its EMF log lines carry): Slack, AWS or a dependency failing before anything reaches a DLQ."
  type        = number
  default     = 5
}
