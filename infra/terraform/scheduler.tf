# EventBridge Scheduler: the daily drift scan (07:00 in drift_scan_timezone, daylight saving
# time included) and the batch function's housekeeping.

resource "aws_scheduler_schedule" "daily_drift_scan" {
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
    role_arn = aws_iam_role.scheduler.arn
    input    = jsonencode({ ProjectName = aws_codebuild_project.drift_scan.name })

    retry_policy {
      maximum_retry_attempts       = 3
      maximum_event_age_in_seconds = 3600
    }
  }
}

resource "aws_scheduler_schedule" "batch_housekeeping" {
  name                = "${var.name_prefix}-batch-housekeeping"
  description         = "toilkit: close expired approvals, settle runs whose end event was lost"
  schedule_expression = var.housekeeping_schedule

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = aws_lambda_function.worker["batch"].arn
    role_arn = aws_iam_role.scheduler.arn
    input    = jsonencode({ toilkit = "housekeeping" })

    retry_policy {
      maximum_retry_attempts       = 0 # the next run comes soon enough
      maximum_event_age_in_seconds = 300
    }
  }
}
