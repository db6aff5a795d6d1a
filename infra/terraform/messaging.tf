# The event bus: one SNS topic, one SQS queue per consuming service with a filter policy on
# the `type` message attribute (raw delivery), and a DLQ for every queue.
#
# Keep in step with shared/topology.py: tests/unit/test_infra_topology.py parses this file
# and fails when a queue, subscription filter or setting differs.

locals {
  consumers = {
    detector = {
      event_types = ["DriftAcceptRequested", "DriftClaimed", "DriftScanRequested"]
    }
    batch = {
      event_types = ["BatchApproved", "BatchCancelRequested", "BatchRejected", "BatchRequested"]
    }
    notifier = {
      event_types = [
        "BatchApprovalRequested",
        "BatchRunFinished",
        "BatchRunProgress",
        "BatchRunRefused",
        "BatchRunStarted",
        "DriftAccepted",
        "DriftClaimed",
        "DriftDetected",
        "DriftResolved",
        "DriftScanCompleted",
        "DriftScanFailed",
        "MessageDeadLettered",
      ]
    }
  }

  visibility_timeout_seconds = 60
  max_receive_count          = 10      # shared/topology.py MAX_RECEIVE_COUNT
  retention_seconds          = 345600  # 4 days
  dlq_retention_seconds      = 1209600 # 14 days
}

resource "aws_sns_topic" "events" {
  name = "${var.name_prefix}-events"
  # Encrypted with the AWS managed key: only toilkit's own roles publish here, and SNS
  # decrypts for the SQS subscriptions itself.
  kms_master_key_id = "alias/aws/sns"
  tags              = var.tags
}

resource "aws_sqs_queue" "dlq" {
  for_each = local.consumers

  name                      = "${var.name_prefix}-${each.key}-dlq"
  message_retention_seconds = local.dlq_retention_seconds
  sqs_managed_sse_enabled   = true
  tags                      = var.tags
}

resource "aws_sqs_queue" "consumer" {
  for_each = local.consumers

  name                       = "${var.name_prefix}-${each.key}"
  visibility_timeout_seconds = local.visibility_timeout_seconds
  message_retention_seconds  = local.retention_seconds
  sqs_managed_sse_enabled    = true
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dlq[each.key].arn
    maxReceiveCount     = local.max_receive_count
  })
  tags = var.tags
}

# Who may send to each queue: the events topic to every consumer's queue, and the rule on
# the state machine's status changes (events.tf) to the run-status queue; nobody else.
locals {
  queue_senders = merge(
    {
      for name in keys(local.consumers) : name => {
        queue   = aws_sqs_queue.consumer[name]
        service = "sns.amazonaws.com"
        source  = aws_sns_topic.events.arn
      }
    },
    {
      unrouted = {
        queue   = aws_sqs_queue.unrouted
        service = "sns.amazonaws.com"
        source  = aws_sns_topic.events.arn
      }
      batch_run_status = {
        queue   = aws_sqs_queue.batch_run_status
        service = "events.amazonaws.com"
        source  = aws_cloudwatch_event_rule.batch_run_status.arn
      }
    },
  )
}

data "aws_iam_policy_document" "queue_senders" {
  for_each = local.queue_senders

  statement {
    sid       = "toilkit-queue-sender"
    effect    = "Allow"
    actions   = ["sqs:SendMessage"]
    resources = [each.value.queue.arn]

    principals {
      type        = "Service"
      identifiers = [each.value.service]
    }

    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [each.value.source]
    }
  }
}

resource "aws_sqs_queue_policy" "senders" {
  for_each = local.queue_senders

  queue_url = each.value.queue.id
  policy    = data.aws_iam_policy_document.queue_senders[each.key].json
}

resource "aws_sns_topic_subscription" "consumer" {
  for_each = local.consumers

  topic_arn            = aws_sns_topic.events.arn
  protocol             = "sqs"
  endpoint             = aws_sqs_queue.consumer[each.key].arn
  raw_message_delivery = true
  filter_policy_scope  = "MessageAttributes"
  filter_policy        = jsonencode({ type = each.value.event_types })
}

# What no consumer's filter matches (no `type` attribute, or a type nobody handles) lands
# here instead of being dropped by SNS; `toilkit dlq list` shows it like a DLQ. Keep the
# filter in step with shared/topology.py (unrouted_filter_policy).
resource "aws_sqs_queue" "unrouted" {
  name                      = "${var.name_prefix}-unrouted"
  message_retention_seconds = local.dlq_retention_seconds
  sqs_managed_sse_enabled   = true
  tags                      = var.tags
}

resource "aws_sns_topic_subscription" "unrouted" {
  topic_arn            = aws_sns_topic.events.arn
  protocol             = "sqs"
  endpoint             = aws_sqs_queue.unrouted.arn
  raw_message_delivery = true
  filter_policy_scope  = "MessageAttributes"
  filter_policy = jsonencode({
    "$or" = [
      { type = [{ exists = false }] },
      { type = [{ "anything-but" = sort(distinct(flatten([for c in local.consumers : c.event_types]))) }] },
    ]
  })
}
