# The batch run state machine: the same definition the batch service's tests run in moto.
# One execution per run, and one per preview (input mode = "preview", named after the
# request's event id and -preview): a dry run the approvers see before they decide.

resource "aws_sfn_state_machine" "batch_run" {
  #checkov:skip=CKV_AWS_284:the ASL has no X-Ray instrumented tasks; the build's own logs say what a run did
  #checkov:skip=CKV_AWS_285:execution data holds the run's parameters, which may be sensitive (include_execution_data = false)
  name       = "${var.name_prefix}-batch-run"
  role_arn   = aws_iam_role.service["state_machine"].arn
  type       = "STANDARD"
  definition = file("${path.module}/../stepfunctions/batch_run.asl.json")

  logging_configuration {
    log_destination        = "${aws_cloudwatch_log_group.service["batch_run_state_machine"].arn}:*"
    include_execution_data = false # run parameters may be sensitive
    level                  = "ERROR"
  }

  # Step Functions checks at creation that the role may deliver logs (and may start builds
  # at the first run): without this the first apply can race the role policy.
  depends_on = [aws_iam_role_policy.state_machine]
  tags       = var.tags
}
