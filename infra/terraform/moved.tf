# Resources that were merged into one for_each resource in December 2026 (the log groups into
# logs.tf, the queue policies into messaging.tf, the IAM roles into iam.tf, the alarms into
# alarms.tf): `terraform apply` moves what a state already has instead of deleting and
# recreating it. A for_each resource whose keys stayed the same moves whole, in one block
# (Terraform applies it before the blocks that move a single resource into one of its keys);
# a resource that became an instance, or an instance whose key changed, needs a block of its
# own: `moved` blocks cannot use for_each. Safe to delete once every deployment has applied a
# commit that has them (docs/deploy.md, "Roll back"); until then a state on the old addresses
# would destroy and recreate them under the same names.

moved {
  from = aws_cloudwatch_log_group.worker
  to   = aws_cloudwatch_log_group.service
}

moved {
  from = aws_cloudwatch_log_group.gateway
  to   = aws_cloudwatch_log_group.service["gateway"]
}

moved {
  from = aws_cloudwatch_log_group.drift_scan
  to   = aws_cloudwatch_log_group.service["drift_scan"]
}

moved {
  from = aws_cloudwatch_log_group.batch_runner
  to   = aws_cloudwatch_log_group.service["batch_runner"]
}

moved {
  from = aws_cloudwatch_log_group.batch_run_state_machine
  to   = aws_cloudwatch_log_group.service["batch_run_state_machine"]
}

moved {
  from = aws_sqs_queue_policy.consumer
  to   = aws_sqs_queue_policy.senders
}

moved {
  from = aws_sqs_queue_policy.batch_run_status
  to   = aws_sqs_queue_policy.senders["batch_run_status"]
}

moved {
  from = aws_iam_role.worker
  to   = aws_iam_role.service
}

moved {
  from = aws_iam_role.gateway
  to   = aws_iam_role.service["gateway"]
}

moved {
  from = aws_iam_role.drift_scan
  to   = aws_iam_role.service["drift_scan"]
}

moved {
  from = aws_iam_role.batch_runner
  to   = aws_iam_role.service["batch_runner"]
}

moved {
  from = aws_iam_role.state_machine
  to   = aws_iam_role.service["state_machine"]
}

moved {
  from = aws_iam_role.scheduler
  to   = aws_iam_role.service["scheduler"]
}

moved {
  from = aws_cloudwatch_metric_alarm.dlq_messages["detector"]
  to   = aws_cloudwatch_metric_alarm.toilkit["detector/dlq_messages"]
}

moved {
  from = aws_cloudwatch_metric_alarm.dlq_messages["batch"]
  to   = aws_cloudwatch_metric_alarm.toilkit["batch/dlq_messages"]
}

moved {
  from = aws_cloudwatch_metric_alarm.dlq_messages["notifier"]
  to   = aws_cloudwatch_metric_alarm.toilkit["notifier/dlq_messages"]
}

moved {
  from = aws_cloudwatch_metric_alarm.dlq_messages["batch_run_status"]
  to   = aws_cloudwatch_metric_alarm.toilkit["batch_run_status/dlq_messages"]
}

moved {
  from = aws_cloudwatch_metric_alarm.oldest_message_age["detector"]
  to   = aws_cloudwatch_metric_alarm.toilkit["detector/oldest_message_age"]
}

moved {
  from = aws_cloudwatch_metric_alarm.oldest_message_age["batch"]
  to   = aws_cloudwatch_metric_alarm.toilkit["batch/oldest_message_age"]
}

moved {
  from = aws_cloudwatch_metric_alarm.oldest_message_age["notifier"]
  to   = aws_cloudwatch_metric_alarm.toilkit["notifier/oldest_message_age"]
}

moved {
  from = aws_cloudwatch_metric_alarm.oldest_message_age["batch_run_status"]
  to   = aws_cloudwatch_metric_alarm.toilkit["batch_run_status/oldest_message_age"]
}

moved {
  from = aws_cloudwatch_metric_alarm.failed_events["detector"]
  to   = aws_cloudwatch_metric_alarm.toilkit["detector/failed_events"]
}

moved {
  from = aws_cloudwatch_metric_alarm.failed_events["batch"]
  to   = aws_cloudwatch_metric_alarm.toilkit["batch/failed_events"]
}

moved {
  from = aws_cloudwatch_metric_alarm.failed_events["notifier"]
  to   = aws_cloudwatch_metric_alarm.toilkit["notifier/failed_events"]
}
