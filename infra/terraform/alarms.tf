# CloudWatch alarms, to an SNS topic of their own: a message in any DLQ (an event a service
# gave up on), a queue whose oldest message waits too long (its function failing, throttled
# or gone), and a worker whose handlers keep failing (the EventsFailed metric of the EMF
# lines the functions log, shared/metrics.py). Eleven alarms, about $1.10 a month
# (docs/cost.md). The ops channel in Slack hears of each dead-lettered message on its own
# (shared/ops.py); these alarms are the backstop for what a function cannot report.

resource "aws_sns_topic" "alarms" {
  #checkov:skip=CKV_AWS_26:CloudWatch cannot publish to a topic encrypted with the aws/sns key, a KMS key of our own would cost $1/month, and alarms carry only queue names and counts
  name = "${var.name_prefix}-alarms"
  tags = var.tags
}

resource "aws_sns_topic_subscription" "alarm_email" {
  for_each = toset(var.alarm_emails)

  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = each.value
}

locals {
  # Every queue toilkit consumes, and the DLQ behind each (the run-status queue included).
  alarmed_queues = merge(
    {
      for name in keys(local.consumers) : name => {
        queue = aws_sqs_queue.consumer[name].name
        dlq   = aws_sqs_queue.dlq[name].name
      }
    },
    {
      batch_run_status = {
        queue = aws_sqs_queue.batch_run_status.name
        dlq   = aws_sqs_queue.batch_run_status_dlq.name
      }
    },
  )
}

resource "aws_cloudwatch_metric_alarm" "dlq_messages" {
  for_each = local.alarmed_queues

  alarm_name          = "${each.value.dlq}-messages"
  alarm_description   = "toilkit: ${each.value.dlq} holds messages ${each.key} gave up on; read its logs, fix, then `toilkit replay`."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = each.value.dlq }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.alarm_dlq_messages
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "oldest_message_age" {
  for_each = local.alarmed_queues

  alarm_name          = "${each.value.queue}-oldest-message-age"
  alarm_description   = "toilkit: the oldest message in ${each.value.queue} waits longer than ${var.alarm_queue_age_seconds} s; is the ${each.key} function failing or throttled?"
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateAgeOfOldestMessage"
  dimensions          = { QueueName = each.value.queue }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.alarm_queue_age_seconds
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "failed_events" {
  for_each = local.consumers

  alarm_name          = "${var.name_prefix}-${each.key}-failed-events"
  alarm_description   = "toilkit: more than ${var.alarm_failed_events} ${each.key} handler attempts failed in 5 minutes; its logs (level ERROR/WARNING, service ${each.key}) say why."
  namespace           = var.name_prefix
  metric_name         = "EventsFailed"
  dimensions          = { Service = each.key }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.alarm_failed_events
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
  tags                = var.tags
}
