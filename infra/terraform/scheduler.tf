# EventBridge Scheduler: the daily drift scan (07:00 in drift_scan_timezone, daylight saving
# time included) and the batch function's housekeeping.

resource "aws_scheduler_schedule" "daily_drift_scan" {
  #checkov:skip=CKV_AWS_297:the schedule's input names a project or a health check, nothing secret; Scheduler encrypts it with its AWS key
  name                         = "${var.name_prefix}-daily-drift-scan"
  description                  = "toilkit: scan every Terraform state for drift"
  schedule_expression          = var.drift_scan_schedule
  schedule_expression_timezone = var.drift_scan_timezone

  flexible_time_window {
    mode = "OFF"
  }

  target {
    # A universal target: Scheduler calls CodeBuild's StartBuild itself.
    arn      = "arn:aws:scheduler:::aws-sdk:codebuild:startBuild"
    role_arn = aws_iam_role.service["scheduler"].arn
    input    = jsonencode({ ProjectName = aws_codebuild_project.drift_scan.name })

    retry_policy {
      maximum_retry_attempts       = 3
      maximum_event_age_in_seconds = 3600
    }
  }

  depends_on = [aws_iam_role_policy.scheduler]
}

resource "aws_scheduler_schedule" "batch_housekeeping" {
  #checkov:skip=CKV_AWS_297:the schedule's input names a project or a health check, nothing secret; Scheduler encrypts it with its AWS key
  name                = "${var.name_prefix}-batch-housekeeping"
  description         = "toilkit: close expired approvals, settle runs whose end event was lost"
  schedule_expression = var.housekeeping_schedule

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = aws_lambda_function.worker["batch"].arn
    role_arn = aws_iam_role.service["scheduler"].arn
    input    = jsonencode({ toilkit = "housekeeping" })

    retry_policy {
      maximum_retry_attempts       = 0 # the next run comes soon enough
      maximum_event_age_in_seconds = 300
    }
  }

  depends_on = [aws_iam_role_policy.scheduler]
}

# A cold gateway sandbox (imports, SSM, clients) takes about as long as Slack waits for an
# ack; a health check every few minutes keeps one sandbox warm for a few cents less than
# nothing (well inside Lambda's free requests). docs/deploy.md has the figures.
resource "aws_scheduler_schedule" "gateway_keep_warm" {
  #checkov:skip=CKV_AWS_297:the schedule's input names a project or a health check, nothing secret; Scheduler encrypts it with its AWS key
  count = var.gateway_keep_warm_schedule == null ? 0 : 1

  name                = "${var.name_prefix}-gateway-keep-warm"
  description         = "toilkit: keep one gateway sandbox warm for Slack's 3-second ack"
  schedule_expression = var.gateway_keep_warm_schedule

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = aws_lambda_alias.gateway_live.arn
    role_arn = aws_iam_role.service["scheduler"].arn
    input = jsonencode({
      version         = "2.0"
      rawPath         = "/healthz"
      rawQueryString  = ""
      headers         = {}
      requestContext  = { http = { method = "GET", path = "/healthz" } }
      isBase64Encoded = false
    })

    retry_policy {
      maximum_retry_attempts       = 0
      maximum_event_age_in_seconds = 60
    }
  }

  depends_on = [aws_iam_role_policy.scheduler]
}
