# The Slack credentials, as SSM SecureString parameters (standard tier: free) encrypted with
# the account's aws/ssm key. Terraform creates them with a placeholder and never reads the
# value back, so the real secrets stay out of the Terraform state: put them with
#
#   aws ssm put-parameter --overwrite --type SecureString --name <name> --value <secret>
#
# The functions read them once per sandbox (cold start).

resource "aws_ssm_parameter" "slack_bot_token" {
  #checkov:skip=CKV_AWS_337:encrypted with the aws/ssm key; a KMS key of our own would cost $1/month, as much as the rest of toilkit
  name        = var.slack_bot_token_parameter
  description = "toilkit: the Slack bot token (xoxb-...)"
  type        = "SecureString"
  value       = "placeholder: put the bot token with aws ssm put-parameter --overwrite"
  tags        = var.tags

  lifecycle {
    ignore_changes = [value]
  }
}

resource "aws_ssm_parameter" "slack_signing_secret" {
  #checkov:skip=CKV_AWS_337:encrypted with the aws/ssm key; a KMS key of our own would cost $1/month, as much as the rest of toilkit
  name        = var.slack_signing_secret_parameter
  description = "toilkit: the Slack app's signing secret"
  type        = "SecureString"
  value       = "placeholder: put the signing secret with aws ssm put-parameter --overwrite"
  tags        = var.tags

  lifecycle {
    ignore_changes = [value]
  }
}
