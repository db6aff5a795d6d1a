# The gateway: a Lambda function URL that Slack posts slash commands and interactions to.
#
# The URL has no IAM auth (Slack cannot sign AWS requests), so the function's resource policy
# lets anyone call it through the URL, and only through the URL (the two permissions below);
# toilkit.aws_lambda.gateway_handler checks Slack's signature (HMAC-SHA256 with the signing secret from SSM, 5-minute window)
# before anything else and answers 401 otherwise. The work the gateway does after its ack
# finishes before the function returns, because Lambda freezes the sandbox afterwards; see
# docs/deploy.md for why Slack's 3 seconds still hold.
#
# Every apply publishes a version and moves the "live" alias to it; the URL, its permissions
# and the keep-warm schedule point at the alias. With SnapStart (var.gateway_snap_start) a
# published version's sandboxes resume from a snapshot taken after the init phase
# (imports, AWS clients, the built gateway); the restore hook reads the SSM secrets again and
# drops the snapshot's connections. Without a snapshot (an on-demand init), the first request
# reads the secrets through the Parameters and Secrets extension (var.secrets_extension).

locals {
  # Besides local.common_environment (lambda.tf).
  gateway_own_environment = {
    TOILKIT_SERVICE                        = "gateway"
    TOILKIT_SLACK_BOT_TOKEN_PARAMETER      = aws_ssm_parameter.slack_bot_token.name
    TOILKIT_SLACK_SIGNING_SECRET_PARAMETER = aws_ssm_parameter.slack_signing_secret.name
    TOILKIT_GATEWAY_CATALOG_PATH           = "/var/task/${var.catalog_file}"
    TOILKIT_GATEWAY_COMMAND_NAME           = var.slash_command
    # The sandbox freezes after each answer: the batch housekeeping refreshes the lists.
    TOILKIT_GATEWAY_REFRESH_OPTIONS = "false"
  }
}

resource "aws_lambda_function" "gateway" {
  #checkov:skip=CKV_AWS_116:Slack calls the URL synchronously (a DLQ only keeps failed async events) and retries itself
  #checkov:skip=CKV_AWS_117:it calls only Slack and public AWS endpoints; a VPC would need a NAT gateway (~$32/month)
  #checkov:skip=CKV_AWS_173:the environment holds names, not secrets (those are in SSM); Lambda encrypts it with its AWS key
  #checkov:skip=CKV_AWS_272:the zip is built and deployed by the same person from the same checkout; no signing profile yet
  #checkov:skip=CKV_AWS_50:the code has no X-Ray instrumentation, so traces would show nothing the logs do not
  function_name    = "${var.name_prefix}-gateway"
  description      = "toilkit gateway: Slack slash commands and interactions"
  role             = aws_iam_role.service["gateway"].arn
  filename         = local.lambda_package["gateway"]
  source_code_hash = filebase64sha256(local.lambda_package["gateway"])
  handler          = "toilkit.aws_lambda.gateway_handler"
  runtime          = local.lambda_runtime
  publish          = true
  architectures    = [var.lambda_architecture]
  memory_size      = var.gateway_memory_mb
  timeout          = 10
  layers           = local.secrets_extension_layers
  # Anyone can call the URL: a flood of unsigned requests (answered 401, but each one runs
  # the function) is capped here instead of taking the account's whole concurrency.
  reserved_concurrent_executions = var.gateway_reserved_concurrency

  dynamic "snap_start" {
    for_each = var.gateway_snap_start ? [1] : []
    content {
      apply_on = "PublishedVersions"
    }
  }

  environment {
    variables = merge(local.common_environment, local.gateway_own_environment)
  }

  depends_on = [aws_cloudwatch_log_group.service]
  tags       = var.tags
}

# The published version Slack's requests reach (SnapStart works on published versions only).
resource "aws_lambda_alias" "gateway_live" {
  name             = "live"
  description      = "The gateway version the function URL serves"
  function_name    = aws_lambda_function.gateway.function_name
  function_version = aws_lambda_function.gateway.version
}

resource "aws_lambda_function_url" "gateway" {
  #checkov:skip=CKV_AWS_258:Slack cannot sign AWS requests; the handler verifies Slack's signature before anything else
  function_name      = aws_lambda_function.gateway.function_name
  qualifier          = aws_lambda_alias.gateway_live.name
  authorization_type = "NONE" # Slack's signature is verified in code
  invoke_mode        = "BUFFERED"
}

# A URL with auth NONE answers 403 unless the function's resource policy lets principal "*"
# call the URL (lambda:InvokeFunctionUrl, only for auth type NONE) and, for URLs created
# since October 2025, invoke the function (lambda:InvokeFunction, only through a function
# URL: nobody gets a plain Invoke). Statement ids of our own: the provider or the console
# may add AWS's default ids (FunctionURLAllowPublicAccess, ...) for the same grants.
resource "aws_lambda_permission" "gateway_url" {
  #checkov:skip=CKV_AWS_301:Slack must reach it without AWS credentials; limited to the function URL, whose requests the handler checks for Slack's signature
  statement_id           = "SlackInvokeFunctionUrl"
  action                 = "lambda:InvokeFunctionUrl"
  function_name          = aws_lambda_function.gateway.function_name
  qualifier              = aws_lambda_alias.gateway_live.name
  principal              = "*"
  function_url_auth_type = "NONE"
}

resource "aws_lambda_permission" "gateway_url_invoke" {
  #checkov:skip=CKV_AWS_301:Slack must reach it without AWS credentials; limited to the function URL, whose requests the handler checks for Slack's signature
  statement_id             = "SlackInvokeFunctionViaUrl"
  action                   = "lambda:InvokeFunction"
  function_name            = aws_lambda_function.gateway.function_name
  qualifier                = aws_lambda_alias.gateway_live.name
  principal                = "*"
  invoked_via_function_url = true
}
