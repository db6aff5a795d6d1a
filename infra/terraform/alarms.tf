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

locals {
  # Every alarm, keyed "<queue or service>/<kind>": what it watches and when it fires.
  alarms = merge(
    {
      for name, queue in local.alarmed_queues : "${name}/dlq_messages" => {
        name        = "${queue.dlq}-messages"
        description = "toilkit: ${queue.dlq} holds messages ${name} gave up on; read its logs, fix, then `toilkit replay`."
        namespace   = "AWS/SQS"
        metric      = "ApproximateNumberOfMessagesVisible"
        dimensions  = { QueueName = queue.dlq }
        statistic   = "Maximum"
        threshold   = var.alarm_dlq_messages
      }
    },
    {
      for name, queue in local.alarmed_queues : "${name}/oldest_message_age" => {
        name        = "${queue.queue}-oldest-message-age"
        description = "toilkit: the oldest message in ${queue.queue} waits longer than ${var.alarm_queue_age_seconds} s; is the ${name} function failing or throttled?"
        namespace   = "AWS/SQS"
        metric      = "ApproximateAgeOfOldestMessage"
        dimensions  = { QueueName = queue.queue }
        statistic   = "Maximum"
        threshold   = var.alarm_queue_age_seconds
      }
    },
    {
      for name in keys(local.consumers) : "${name}/failed_events" => {
        name        = "${var.name_prefix}-${name}-failed-events"
        description = "toilkit: more than ${var.alarm_failed_events} ${name} handler attempts failed in 5 minutes; its logs (level ERROR/WARNING, service ${name}) say why."
        namespace   = var.name_prefix
        metric      = "EventsFailed"
        dimensions  = { Service = name }
        statistic   = "Sum"
        threshold   = var.alarm_failed_events
      }
    },
  )
}

# Each fires when its 5-minute statistic is above its threshold, and says so again when it
# is back to OK; no data (an idle queue, a quiet worker) is not a breach.
resource "aws_cloudwatch_metric_alarm" "toilkit" {
  for_each = local.alarms

  alarm_name          = each.value.name
  alarm_description   = each.value.description
  namespace           = each.value.namespace
  metric_name         = each.value.metric
  dimensions          = each.value.dimensions
  statistic           = each.value.statistic
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = each.value.threshold
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
  tags                = var.tags
}
