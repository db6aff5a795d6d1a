# Every CloudWatch log group toilkit writes to, one resource for all of them. Each is
# created before what writes there: a function, build or state machine that found none
# would create its own, unmanaged and kept forever.

locals {
  log_groups = merge(
    { for name in keys(local.consumers) : name => "/aws/lambda/${var.name_prefix}-${name}" },
    {
      gateway                 = "/aws/lambda/${var.name_prefix}-gateway"
      drift_scan              = "/aws/codebuild/${var.name_prefix}-drift-scan"
      batch_runner            = "/aws/codebuild/${var.name_prefix}-batch-runner"
      batch_run_state_machine = "/aws/vendedlogs/states/${var.name_prefix}-batch-run"
    },
  )
}

resource "aws_cloudwatch_log_group" "service" {
  #checkov:skip=CKV_AWS_158:CloudWatch Logs encrypts every group with its own key; a KMS key would cost $1/month, as much as the rest of toilkit
  #checkov:skip=CKV_AWS_338:operational logs, kept log_retention_days (30 by default; set it higher where an audit needs a year)
  for_each = local.log_groups

  name              = each.value
  retention_in_days = var.log_retention_days
  tags              = var.tags
}
