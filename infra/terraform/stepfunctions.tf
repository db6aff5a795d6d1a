# The batch run state machine: the same definition the batch service's tests run in moto.

resource "aws_cloudwatch_log_group" "batch_run_state_machine" {
  name              = "/aws/vendedlogs/states/${var.name_prefix}-batch-run"
  retention_in_days = var.log_retention_days
  tags              = var.tags
}

resource "aws_sfn_state_machine" "batch_run" {
  name       = "${var.name_prefix}-batch-run"
  role_arn   = aws_iam_role.state_machine.arn
  type       = "STANDARD"
  definition = file("${path.module}/../stepfunctions/batch_run.asl.json")

  logging_configuration {
    log_destination        = "${aws_cloudwatch_log_group.batch_run_state_machine.arn}:*"
    include_execution_data = false # run parameters may be sensitive
    level                  = "ERROR"
  }

  tags = var.tags
}
