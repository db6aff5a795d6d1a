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
