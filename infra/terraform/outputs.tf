output "topic_arn" {
  description = "The events topic."
  value       = aws_sns_topic.events.arn
}

output "queue_urls" {
  description = "Queue URL per consuming service."
  value       = { for name, queue in aws_sqs_queue.consumer : name => queue.id }
}

output "dlq_urls" {
  description = "DLQ URL per consuming service."
  value       = { for name, queue in aws_sqs_queue.dlq : name => queue.id }
}

output "bucket" {
  description = "Set TOILKIT_BUCKET to this in every service."
  value       = aws_s3_bucket.artifacts.bucket
}

output "gateway_url" {
  description = "Slack's Request URL (slash command, interactivity): put it in slack/manifest.yaml or the app's settings."
  value       = "${trimsuffix(aws_lambda_function_url.gateway.function_url, "/")}/slack/events"
}

output "state_machine_arn" {
  description = "The batch-run state machine: the catalog's stepfunctions runners name it (state_machine_arn)."
  value       = aws_sfn_state_machine.batch_run.arn
}

output "batch_runner_project" {
  description = "The batch-runner CodeBuild project: the catalog's stepfunctions runners name it (project)."
  value       = aws_codebuild_project.batch_runner.name
}

output "drift_scan_project" {
  description = "The drift-scan CodeBuild project (aws codebuild start-build --project-name ... scans now)."
  value       = aws_codebuild_project.drift_scan.name
}

output "function_names" {
  description = "Lambda function per service."
  value       = merge({ for name, f in aws_lambda_function.worker : name => f.function_name }, { gateway = aws_lambda_function.gateway.function_name })
}

output "slack_secret_parameters" {
  description = "SSM parameters to put the Slack secrets in (aws ssm put-parameter --overwrite)."
  value = {
    bot_token      = aws_ssm_parameter.slack_bot_token.name
    signing_secret = aws_ssm_parameter.slack_signing_secret.name
  }
}

output "alarm_topic_arn" {
  description = "The SNS topic the queue and DLQ alarms notify: subscribe a pager or AWS Chatbot to it (alarm_emails subscribes addresses)."
  value       = aws_sns_topic.alarms.arn
}
