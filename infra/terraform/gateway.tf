# The gateway: a Lambda function URL that Slack posts slash commands and interactions to.
#
# The URL has no IAM auth (Slack cannot sign AWS requests); toilkit.aws_lambda.gateway_handler
# checks Slack's signature (HMAC-SHA256 with the signing secret from SSM, 5-minute window)
# before anything else and answers 401 otherwise. The work the gateway does after its ack
# finishes before the function returns, because Lambda freezes the sandbox afterwards; see
# docs/deploy.md for why Slack's 3 seconds still hold.

resource "aws_cloudwatch_log_group" "gateway" {
  name              = "/aws/lambda/${var.name_prefix}-gateway"
  retention_in_days = var.log_retention_days
  tags              = var.tags
}

resource "aws_lambda_function" "gateway" {
  function_name    = "${var.name_prefix}-gateway"
  description      = "toilkit gateway: Slack slash commands and interactions"
  role             = aws_iam_role.gateway.arn
  filename         = var.lambda_package
  source_code_hash = filebase64sha256(var.lambda_package)
  handler          = "toilkit.aws_lambda.gateway_handler"
  runtime          = "python3.11"
  architectures    = [var.lambda_architecture]
  memory_size      = var.gateway_memory_mb
  timeout          = 10

  environment {
    variables = {
      TOILKIT_SERVICE                        = "gateway"
      TOILKIT_NAME_PREFIX                    = var.name_prefix
      TOILKIT_BUCKET                         = aws_s3_bucket.artifacts.bucket
      TOILKIT_SLACK_BOT_TOKEN_PARAMETER      = aws_ssm_parameter.slack_bot_token.name
      TOILKIT_SLACK_SIGNING_SECRET_PARAMETER = aws_ssm_parameter.slack_signing_secret.name
      TOILKIT_GATEWAY_CATALOG_PATH           = "/var/task/${var.catalog_file}"
      TOILKIT_GATEWAY_COMMAND_NAME           = var.slash_command
    }
  }

  depends_on = [aws_cloudwatch_log_group.gateway]
  tags       = var.tags
}

resource "aws_lambda_function_url" "gateway" {
  function_name      = aws_lambda_function.gateway.function_name
  authorization_type = "NONE" # Slack's signature is verified in code
  invoke_mode        = "BUFFERED"
}
