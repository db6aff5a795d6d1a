# Step Functions execution status changes -> an SQS queue -> the batch function, which
# settles the run (outcome, log tail, BatchRunFinished). The batch service reads these as
# EventBridge events (TOILKIT_BATCH_COMPLETION_QUEUE_URL, services/batch/runners/stepfunctions.py),
# not as toilkit events, so they get a queue of their own, outside the shared topology. Its
# queue policy (only this rule may send) is with the others in messaging.tf.

resource "aws_sqs_queue" "batch_run_status_dlq" {
  name                      = "${var.name_prefix}-batch-run-status-dlq"
  message_retention_seconds = local.dlq_retention_seconds
  sqs_managed_sse_enabled   = true
  tags                      = var.tags
}

resource "aws_sqs_queue" "batch_run_status" {
  name                       = "${var.name_prefix}-batch-run-status"
  visibility_timeout_seconds = local.visibility_timeout_seconds
  message_retention_seconds  = local.retention_seconds
  sqs_managed_sse_enabled    = true
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.batch_run_status_dlq.arn
    maxReceiveCount     = local.max_receive_count
  })
  tags = var.tags
}

resource "aws_cloudwatch_event_rule" "batch_run_status" {
  name        = "${var.name_prefix}-batch-run-status"
  description = "toilkit: batch run executions that ended"
  event_pattern = jsonencode({
    source        = ["aws.states"]
    "detail-type" = ["Step Functions Execution Status Change"]
    detail = {
      stateMachineArn = [aws_sfn_state_machine.batch_run.arn]
      status          = ["SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"]
    }
  })
  tags = var.tags
}

resource "aws_cloudwatch_event_target" "batch_run_status" {
  rule = aws_cloudwatch_event_rule.batch_run_status.name
  arn  = aws_sqs_queue.batch_run_status.arn
}
