# One role per function, build project, state machine and scheduler, each allowed exactly
# the actions its code calls on exactly the resources it owns. No action is a wildcard;
# the only "*" resources are for actions AWS does not scope to a resource (sns:ListTopics,
# cloudtrail:LookupEvents, the VPC network-interface calls of a build in a VPC).

data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.region
  tables     = [aws_dynamodb_table.idempotency.arn, aws_dynamodb_table.state.arn]
  # Every queue a runtime looks up by name at start (shared/topology.py resolve_urls).
  topology_queues = concat(
    [for q in aws_sqs_queue.consumer : q.arn],
    [for q in aws_sqs_queue.dlq : q.arn],
  )
  ssm_parameter_arn = "arn:aws:ssm:${local.region}:${local.account_id}:parameter"
}

# Every role toilkit makes: its name and the AWS service that assumes it.
locals {
  iam_roles = merge(
    {
      for name in keys(local.consumers) :
      name => { name = "${var.name_prefix}-${name}-function", service = "lambda" }
    },
    {
      gateway       = { name = "${var.name_prefix}-gateway-function", service = "lambda" }
      drift_scan    = { name = "${var.name_prefix}-drift-scan-build", service = "codebuild" }
      batch_runner  = { name = "${var.name_prefix}-batch-runner-build", service = "codebuild" }
      state_machine = { name = "${var.name_prefix}-batch-run-state-machine", service = "states" }
      scheduler     = { name = "${var.name_prefix}-scheduler", service = "scheduler" }
    },
  )
}

# Who may assume a role: one trust document per AWS service. EventBridge Scheduler only
# for schedules in this account (the confused-deputy guard AWS documents for it).
data "aws_iam_policy_document" "assume" {
  for_each = toset([for role in local.iam_roles : role.service])

  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["${each.key}.amazonaws.com"]
    }
    dynamic "condition" {
      for_each = each.key == "scheduler" ? [local.account_id] : []
      content {
        test     = "StringEquals"
        variable = "aws:SourceAccount"
        values   = [condition.value]
      }
    }
  }
}

resource "aws_iam_role" "service" {
  for_each = local.iam_roles

  name               = each.value.name
  assume_role_policy = data.aws_iam_policy_document.assume[each.value.service].json
  tags               = var.tags
}

# --------------------------------------------------------------------------- shared statements
# The statements several roles need word for word, written once and merged into each role's
# document through source_policy_documents. Each grants one thing on one set of resources,
# so a role that sources one gains nothing it did not need before.

# What every toilkit runtime (the functions and the drift scan) does at start and per event:
# find its queues and the topic by name, publish, and keep idempotency and state records.
data "aws_iam_policy_document" "runtime" {
  statement {
    sid       = "ResolveTopology"
    actions   = ["sqs:GetQueueUrl"]
    resources = local.topology_queues
  }

  statement {
    sid       = "FindTopic"
    actions   = ["sns:ListTopics"]
    resources = ["*"] # ListTopics has no resource-level permissions
  }

  statement {
    sid       = "Publish"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.events.arn]
  }

  statement {
    sid = "State"
    actions = [
      "dynamodb:GetItem",
      "dynamodb:PutItem",
      "dynamodb:UpdateItem",
      "dynamodb:DeleteItem",
      "dynamodb:Query",
      "dynamodb:BatchGetItem",
      "dynamodb:BatchWriteItem",
    ]
    resources = local.tables
  }
}

# Offloaded event payloads (and the drift scan's plans), read and written. The gateway only
# writes them, so it has its own narrower statement instead.
data "aws_iam_policy_document" "payloads" {
  statement {
    sid       = "Payloads"
    actions   = ["s3:GetObject", "s3:PutObject"]
    resources = ["${aws_s3_bucket.artifacts.arn}/*"]
  }
}

data "aws_iam_policy_document" "slack_bot_token" {
  statement {
    sid       = "SlackToken"
    actions   = ["ssm:GetParameters", "ssm:GetParameter"] # GetParameter: the extension
    resources = [aws_ssm_parameter.slack_bot_token.arn]
  }
}

# Starting a drift scan: the detector on a request from Slack, the scheduler every morning.
data "aws_iam_policy_document" "start_drift_scan" {
  statement {
    sid       = "StartDriftScan"
    actions   = ["codebuild:StartBuild"]
    resources = [aws_codebuild_project.drift_scan.arn]
  }
}

# Driving a batch run's build: the state machine, and the batch function's `codebuild` runner
# (a catalog command that starts the build directly, without Step Functions).
data "aws_iam_policy_document" "drive_batch_builds" {
  statement {
    sid       = "DriveBatchBuilds"
    actions   = ["codebuild:StartBuild", "codebuild:BatchGetBuilds", "codebuild:StopBuild"]
    resources = [aws_codebuild_project.batch_runner.arn]
  }
}

# Writing its own log streams: every function and build, each to its own group (logs.tf).
data "aws_iam_policy_document" "own_logs" {
  for_each = toset(concat(keys(local.consumers), ["gateway", "drift_scan", "batch_runner"]))

  statement {
    sid       = "OwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.service[each.key].arn}:*"]
  }
}

# What a Lambda event source mapping does with the queue it reads for a function. Its
# DeleteMessageBatch and ChangeMessageVisibilityBatch calls are authorized by DeleteMessage
# and ChangeMessageVisibility: IAM has no actions of the batch names.
data "aws_iam_policy_document" "consume_queue" {
  for_each = merge(
    { for name in keys(local.consumers) : name => aws_sqs_queue.consumer[name].arn },
    { batch_run_status = aws_sqs_queue.batch_run_status.arn },
  )

  statement {
    sid = "ConsumeQueue"
    actions = [
      "sqs:ReceiveMessage",
      "sqs:DeleteMessage",
      "sqs:ChangeMessageVisibility",
      "sqs:GetQueueAttributes",
    ]
    resources = [each.value]
  }
}

# --------------------------------------------------------------------------- workers

# What every toilkit function does: log, consume its own queue, and the shared runtime.
data "aws_iam_policy_document" "worker_runtime" {
  for_each = local.consumers

  source_policy_documents = [
    data.aws_iam_policy_document.runtime.json,
    data.aws_iam_policy_document.payloads.json,
    data.aws_iam_policy_document.own_logs[each.key].json,
    data.aws_iam_policy_document.consume_queue[each.key].json,
  ]
}

resource "aws_iam_role_policy" "worker_runtime" {
  for_each = local.consumers

  name   = "toilkit-runtime"
  role   = aws_iam_role.service[each.key].id
  policy = data.aws_iam_policy_document.worker_runtime[each.key].json
}

resource "aws_iam_role_policy" "detector_function" {
  name   = "toilkit-detector"
  role   = aws_iam_role.service["detector"].id
  policy = data.aws_iam_policy_document.start_drift_scan.json
}

data "aws_iam_policy_document" "batch_function" {
  source_policy_documents = [
    data.aws_iam_policy_document.drive_batch_builds.json,
    data.aws_iam_policy_document.slack_bot_token.json,
    data.aws_iam_policy_document.consume_queue["batch_run_status"].json,
  ]

  statement {
    sid       = "StartRuns"
    actions   = ["states:StartExecution"]
    resources = [aws_sfn_state_machine.batch_run.arn]
  }

  statement {
    sid = "WatchRuns"
    actions = [
      "states:DescribeExecution",
      "states:StopExecution",
      "states:GetExecutionHistory",
    ]
    resources = ["arn:aws:states:${local.region}:${local.account_id}:execution:${aws_sfn_state_machine.batch_run.name}:*"]
  }

  statement {
    sid       = "BuildLogs"
    actions   = ["logs:GetLogEvents"]
    resources = ["${aws_cloudwatch_log_group.service["batch_runner"].arn}:*"]
  }
}

resource "aws_iam_role_policy" "batch_function" {
  name   = "toilkit-batch"
  role   = aws_iam_role.service["batch"].id
  policy = data.aws_iam_policy_document.batch_function.json
}

resource "aws_iam_role_policy" "notifier_function" {
  name   = "toilkit-notifier"
  role   = aws_iam_role.service["notifier"].id
  policy = data.aws_iam_policy_document.slack_bot_token.json
}

# --------------------------------------------------------------------------- gateway

data "aws_iam_policy_document" "gateway_function" {
  source_policy_documents = [
    data.aws_iam_policy_document.runtime.json,
    data.aws_iam_policy_document.slack_bot_token.json,
    data.aws_iam_policy_document.own_logs["gateway"].json,
  ]

  statement {
    sid       = "PayloadUploads"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.artifacts.arn}/*"]
  }

  statement {
    sid       = "SlackSigningSecret"
    actions   = ["ssm:GetParameters", "ssm:GetParameter"] # GetParameter: the extension
    resources = [aws_ssm_parameter.slack_signing_secret.arn]
  }
}

resource "aws_iam_role_policy" "gateway_function" {
  name   = "toilkit-gateway"
  role   = aws_iam_role.service["gateway"].id
  policy = data.aws_iam_policy_document.gateway_function.json
}

# --------------------------------------------------------------------------- drift scans

data "aws_iam_policy_document" "drift_scan" {
  source_policy_documents = [
    data.aws_iam_policy_document.runtime.json,
    data.aws_iam_policy_document.payloads.json,
    data.aws_iam_policy_document.own_logs["drift_scan"].json,
  ]

  statement {
    sid       = "InstallToilkit"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.artifacts.arn}/${aws_s3_object.toilkit_wheel.key}"]
  }

  statement {
    sid       = "Attribution"
    actions   = ["cloudtrail:LookupEvents"]
    resources = ["*"] # LookupEvents has no resource-level permissions
  }

  # CodeBuild clones the infrastructure repository with the connection's token, asked for
  # with the project's role (the older codestar-connections prefix for connections made
  # before the service was renamed).
  dynamic "statement" {
    for_each = var.infra_repo_connection_arn == null ? [] : [var.infra_repo_connection_arn]
    content {
      sid = "CloneInfraRepo"
      actions = [
        "codeconnections:GetConnection",
        "codeconnections:GetConnectionToken",
        "codestar-connections:GetConnection",
        "codestar-connections:GetConnectionToken",
      ]
      resources = [statement.value]
    }
  }

  dynamic "statement" {
    for_each = length(var.drift_scan_assume_role_arns) > 0 ? [1] : []
    content {
      sid       = "PlanRoles"
      actions   = ["sts:AssumeRole"]
      resources = var.drift_scan_assume_role_arns
    }
  }
}

resource "aws_iam_role_policy" "drift_scan" {
  name   = "toilkit-drift-scan"
  role   = aws_iam_role.service["drift_scan"].id
  policy = data.aws_iam_policy_document.drift_scan.json
}

resource "aws_iam_role_policy_attachment" "drift_scan" {
  for_each = toset(var.drift_scan_policy_arns)

  role       = aws_iam_role.service["drift_scan"].name
  policy_arn = each.value
}

# --------------------------------------------------------------------------- batch runs

data "aws_iam_policy_document" "batch_runner" {
  source_policy_documents = [data.aws_iam_policy_document.own_logs["batch_runner"].json]

  dynamic "statement" {
    for_each = var.batch_runner_vpc == null ? [] : [var.batch_runner_vpc]
    content {
      sid = "RunInTheVpc"
      actions = [
        "ec2:CreateNetworkInterface",
        "ec2:DescribeNetworkInterfaces",
        "ec2:DeleteNetworkInterface",
        "ec2:DescribeSubnets",
        "ec2:DescribeSecurityGroups",
        "ec2:DescribeDhcpOptions",
        "ec2:DescribeVpcs",
      ]
      resources = ["*"] # CodeBuild's documented VPC policy; these take no resource ARNs
    }
  }

  dynamic "statement" {
    for_each = var.batch_runner_vpc == null ? [] : [var.batch_runner_vpc]
    content {
      sid       = "AttachToSubnets"
      actions   = ["ec2:CreateNetworkInterfacePermission"]
      resources = ["arn:aws:ec2:${local.region}:${local.account_id}:network-interface/*"]
      condition {
        test     = "ArnEquals"
        variable = "ec2:Subnet"
        values   = [for s in statement.value.subnet_ids : "arn:aws:ec2:${local.region}:${local.account_id}:subnet/${s}"]
      }
    }
  }
}

resource "aws_iam_role_policy" "batch_runner" {
  name   = "toilkit-batch-runner"
  role   = aws_iam_role.service["batch_runner"].id
  policy = data.aws_iam_policy_document.batch_runner.json
}

resource "aws_iam_role_policy_attachment" "batch_runner" {
  for_each = toset(var.batch_runner_policy_arns)

  role       = aws_iam_role.service["batch_runner"].name
  policy_arn = each.value
}

# --------------------------------------------------------------------------- state machine

data "aws_iam_policy_document" "state_machine" {
  source_policy_documents = [data.aws_iam_policy_document.drive_batch_builds.json]

  statement {
    sid = "ErrorLogs"
    actions = [
      "logs:CreateLogDelivery",
      "logs:GetLogDelivery",
      "logs:UpdateLogDelivery",
      "logs:DeleteLogDelivery",
      "logs:ListLogDeliveries",
      "logs:PutResourcePolicy",
      "logs:DescribeResourcePolicies",
      "logs:DescribeLogGroups",
    ]
    resources = ["*"] # CloudWatch Logs delivery for Step Functions takes no resource ARNs
  }
}

resource "aws_iam_role_policy" "state_machine" {
  name   = "toilkit-batch-run"
  role   = aws_iam_role.service["state_machine"].id
  policy = data.aws_iam_policy_document.state_machine.json
}

# --------------------------------------------------------------------------- scheduler

data "aws_iam_policy_document" "scheduler" {
  source_policy_documents = [data.aws_iam_policy_document.start_drift_scan.json]

  statement {
    sid       = "HousekeepingAndKeepWarm"
    actions   = ["lambda:InvokeFunction"]
    resources = [aws_lambda_function.worker["batch"].arn, aws_lambda_alias.gateway_live.arn]
  }
}

resource "aws_iam_role_policy" "scheduler" {
  name   = "toilkit-scheduler"
  role   = aws_iam_role.service["scheduler"].id
  policy = data.aws_iam_policy_document.scheduler.json
}
