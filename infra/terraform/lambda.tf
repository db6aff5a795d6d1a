# The three workers as Lambda functions behind SQS event source mappings.
#
# Each function has its own zip (scripts/build-lambda.sh: its service and only what it
# imports); TOILKIT_SERVICE names the service, whose services/<name>/function.py builds it,
# and toilkit.aws_lambda.worker_handler runs the service's own handlers through
# Worker.process_received: idempotency, poison handling and retry backoff are the same as
# under `toilkit serve`, and the messages it could not handle are returned as
# batchItemFailures (ReportBatchItemFailures), so one failure never redelivers the batch.
#
# Lambda requires a queue's visibility timeout to be at least the function's timeout; the
# shared topology gives every queue 60 s, so functions stop at 55 s and handlers at 45 s.
# Scans take minutes: the detector function hands them to the drift-scan CodeBuild project.
# docs/deploy.md says what to swap to run the workers on ECS Fargate instead.

locals {
  lambda_package = {
    for name in ["gateway", "detector", "batch", "notifier"] :
    name => "${var.lambda_packages_dir}/toilkit-${name}.zip"
  }
  # SnapStart needs Python 3.12 or newer; the zips' byte code is compiled for this one.
  lambda_runtime = "python3.12"

  worker_timeout_seconds  = 55
  handler_timeout_seconds = 45

  # What a cold sandbox would otherwise look up by name before its first event (the topic
  # with ListTopics, each queue with GetQueueUrl): the functions read them from here.
  topic_arn  = aws_sns_topic.events.arn
  queue_urls = jsonencode({ for name, queue in aws_sqs_queue.consumer : name => queue.url })

  # What every function is told (the gateway's too, gateway.tf), then each worker's own.
  common_environment = {
    TOILKIT_TOPIC_ARN   = local.topic_arn
    TOILKIT_NAME_PREFIX = var.name_prefix
    TOILKIT_BUCKET      = aws_s3_bucket.artifacts.bucket
    # The AWS Parameters and Secrets Lambda Extension (var.secrets_extension), on the port
    # it listens on by default. It answers only once a request came (never in the init
    # phase) and caches each value for up to five minutes, so toilkit uses it for a
    # sandbox's first read only and reads SSM with the SDK afterwards (shared/ssm_extension.py).
    TOILKIT_SECRETS_EXTENSION              = tostring(var.secrets_extension)
    PARAMETERS_SECRETS_EXTENSION_HTTP_PORT = "2773"
  }

  # The extension's layer on every function: the ARN given, or the latest AWS publishes for
  # this region and architecture (data.aws_ssm_parameter.secrets_extension_layer).
  secrets_extension_layer_arn = (
    var.secrets_extension_layer_arn != null
    ? var.secrets_extension_layer_arn
    : one(data.aws_ssm_parameter.secrets_extension_layer[*].insecure_value)
  )
  secrets_extension_layers = var.secrets_extension ? [local.secrets_extension_layer_arn] : []

  worker_own_environment = {
    detector = {
      TOILKIT_DRIFT_SCAN_PROJECT               = aws_codebuild_project.drift_scan.name
      TOILKIT_DETECTOR_WORKER__HANDLER_TIMEOUT = local.handler_timeout_seconds
      TOILKIT_DETECTOR_WORKER__CONCURRENCY     = 1
      TOILKIT_DETECTOR_WORK_DIR                = "/tmp/toilkit-detector"
      TOILKIT_DETECTOR_PLUGIN_CACHE_DIR        = "/tmp/terraform-plugins"
    }
    batch = {
      TOILKIT_SLACK_BOT_TOKEN_PARAMETER     = aws_ssm_parameter.slack_bot_token.name
      TOILKIT_BATCH_CATALOG_PATH            = "/var/task/${var.catalog_file}"
      TOILKIT_BATCH_COMPLETION_QUEUE_URL    = aws_sqs_queue.batch_run_status.id
      TOILKIT_BATCH_LOG_GROUP               = aws_cloudwatch_log_group.service["batch_runner"].name
      TOILKIT_BATCH_LOG_DIR                 = "/tmp/toilkit-runs"
      TOILKIT_BATCH_WORKER__HANDLER_TIMEOUT = local.handler_timeout_seconds
    }
    notifier = {
      TOILKIT_SLACK_BOT_TOKEN_PARAMETER        = aws_ssm_parameter.slack_bot_token.name
      TOILKIT_NOTIFIER_DEFAULT_CHANNEL         = var.notifier_default_channel
      TOILKIT_NOTIFIER_WORKER__HANDLER_TIMEOUT = local.handler_timeout_seconds
      # Empty (the default) turns the ops channel off.
      TOILKIT_NOTIFIER_OPS_CHANNEL  = var.notifier_ops_channel
      TOILKIT_NOTIFIER_DRIFT_REVERT = tostring(var.drift_revert_button)
    }
  }
  worker_environment = {
    for name, own in local.worker_own_environment : name => merge(
      local.common_environment,
      { TOILKIT_SERVICE = name, TOILKIT_QUEUE_URLS = local.queue_urls },
      own,
    )
  }
}

# The extension layer's latest ARN for this region and architecture, as AWS publishes it.
data "aws_ssm_parameter" "secrets_extension_layer" {
  count = var.secrets_extension && var.secrets_extension_layer_arn == null ? 1 : 0
  name  = "/aws/service/aws-parameters-and-secrets-lambda-extension/${var.lambda_architecture == "arm64" ? "arm64" : "x86"}/latest"
}

resource "aws_lambda_function" "worker" {
  #checkov:skip=CKV_AWS_115:each event source mapping caps its concurrency (worker_max_concurrency); a reservation would come out of the account's unreserved pool
  #checkov:skip=CKV_AWS_116:SQS invokes them, and each queue has its own DLQ (redrive policy); a function DLQ only keeps async events
  #checkov:skip=CKV_AWS_117:they call only Slack and public AWS endpoints; a VPC would need a NAT gateway (~$32/month)
  #checkov:skip=CKV_AWS_173:the environment holds names, not secrets (those are in SSM); Lambda encrypts it with its AWS key
  #checkov:skip=CKV_AWS_272:the zip is built and deployed by the same person from the same checkout; no signing profile yet
  #checkov:skip=CKV_AWS_50:the code has no X-Ray instrumentation, so traces would show nothing the logs do not
  for_each = local.consumers

  function_name    = "${var.name_prefix}-${each.key}"
  description      = "toilkit ${each.key}: consumes ${var.name_prefix}-${each.key}"
  role             = aws_iam_role.service[each.key].arn
  filename         = local.lambda_package[each.key]
  source_code_hash = filebase64sha256(local.lambda_package[each.key])
  handler          = "toilkit.aws_lambda.worker_handler"
  runtime          = local.lambda_runtime
  architectures    = [var.lambda_architecture]
  memory_size      = var.worker_memory_mb[each.key]
  timeout          = local.worker_timeout_seconds
  layers           = local.secrets_extension_layers

  environment {
    variables = local.worker_environment[each.key]
  }

  depends_on = [aws_cloudwatch_log_group.service]
  tags       = var.tags
}

resource "aws_lambda_event_source_mapping" "worker" {
  for_each = local.consumers

  event_source_arn        = aws_sqs_queue.consumer[each.key].arn
  function_name           = aws_lambda_function.worker[each.key].arn
  batch_size              = var.worker_batch_size[each.key]
  function_response_types = ["ReportBatchItemFailures"]

  scaling_config {
    maximum_concurrency = var.worker_max_concurrency[each.key]
  }

  # Lambda checks at creation that the role may read the queue; without this the first
  # apply can race the role policy ("execution role does not have permissions").
  depends_on = [aws_iam_role_policy.worker_runtime]
}

# Step Functions execution status changes (events.tf) settle batch runs.
resource "aws_lambda_event_source_mapping" "batch_run_status" {
  event_source_arn        = aws_sqs_queue.batch_run_status.arn
  function_name           = aws_lambda_function.worker["batch"].arn
  batch_size              = 10
  function_response_types = ["ReportBatchItemFailures"]

  scaling_config {
    maximum_concurrency = 2
  }

  depends_on = [aws_iam_role_policy.batch_function]
}
