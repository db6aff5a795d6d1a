# State that must survive restarts (DynamoDB) and large payloads (S3).
# Keep in step with shared/topology.py (TABLES and the bucket default).

data "aws_caller_identity" "current" {}

resource "aws_dynamodb_table" "idempotency" {
  #checkov:skip=CKV_AWS_119:encrypted with DynamoDB's AWS owned key; a KMS key of our own would cost $1/month, as much as the rest of toilkit
  #checkov:skip=CKV_AWS_28:idempotency keys live minutes to days; a lost table only lets a redelivered event through again
  name         = "${var.name_prefix}-idempotency"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "id"

  attribute {
    name = "id"
    type = "S"
  }

  ttl {
    attribute_name = "expiration"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = false # idempotency keys are short-lived by design
  }

  tags = var.tags
}

resource "aws_dynamodb_table" "state" {
  #checkov:skip=CKV_AWS_119:encrypted with DynamoDB's AWS owned key; a KMS key of our own would cost $1/month, as much as the rest of toilkit
  name         = "${var.name_prefix}-state"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "pk"
  range_key    = "sk"

  attribute {
    name = "pk"
    type = "S"
  }

  attribute {
    name = "sk"
    type = "S"
  }

  ttl {
    attribute_name = "expires_at"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true # run audit, drift history and Slack threads live here
  }

  tags = var.tags
}

resource "aws_s3_bucket" "artifacts" {
  #checkov:skip=CKV_AWS_18:only toilkit's roles read and write it (public access blocked); access logs would need a second bucket
  #checkov:skip=CKV_AWS_21:payloads and plans are written once and expire; versions would keep every expired object
  #checkov:skip=CKV_AWS_144:everything in it can be rebuilt (the wheel) or is transient (payloads, plans); no second region
  #checkov:skip=CKV_AWS_145:S3 encrypts every object (SSE-S3); SSE-KMS would add a key and per-request KMS calls
  #checkov:skip=CKV2_AWS_62:nothing reacts to new objects; events carry the object keys
  bucket = coalesce(var.bucket_name, "${var.name_prefix}-artifacts-${data.aws_caller_identity.current.account_id}")
  tags   = var.tags
}

resource "aws_s3_bucket_public_access_block" "artifacts" {
  bucket                  = aws_s3_bucket.artifacts.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_lifecycle_configuration" "artifacts" {
  bucket = aws_s3_bucket.artifacts.id

  rule {
    id     = "expire-offloaded-payloads"
    status = "Enabled"
    filter {
      prefix = "payloads/"
    }
    expiration {
      days = 30
    }
  }

  # An upload that never completed (a function that timed out mid-way) leaves parts that are
  # billed but never listed.
  rule {
    id     = "abort-incomplete-uploads"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}
