# The CodeBuild projects: drift scans (daily, and on request from Slack) and batch runs.

resource "aws_s3_object" "toilkit_wheel" {
  bucket = aws_s3_bucket.artifacts.id
  key    = "releases/${basename(var.toilkit_wheel)}"
  source = var.toilkit_wheel
  etag   = filemd5(var.toilkit_wheel)
  tags   = var.tags
}

resource "aws_cloudwatch_log_group" "drift_scan" {
  name              = "/aws/codebuild/${var.name_prefix}-drift-scan"
  retention_in_days = var.log_retention_days
  tags              = var.tags
}

resource "aws_codebuild_project" "drift_scan" {
  name          = "${var.name_prefix}-drift-scan"
  description   = "toilkit: terraform plan for every state, drift published to the events topic"
  service_role  = aws_iam_role.drift_scan.arn
  build_timeout = 120

  source {
    type      = var.infra_repo_type
    location  = var.infra_repo_url
    buildspec = file("${path.module}/../buildspecs/drift-scan.yml")
  }

  artifacts {
    type = "NO_ARTIFACTS"
  }

  environment {
    compute_type = "BUILD_GENERAL1_SMALL"
    image        = var.codebuild_image
    type         = "LINUX_CONTAINER"

    environment_variable {
      name  = "TOILKIT_NAME_PREFIX"
      value = var.name_prefix
    }
    environment_variable {
      name  = "TOILKIT_BUCKET"
      value = aws_s3_bucket.artifacts.bucket
    }
    environment_variable {
      name  = "TOILKIT_WHEEL_KEY"
      value = aws_s3_object.toilkit_wheel.key
    }
    environment_variable {
      name  = "TOILKIT_DETECTOR_SCHEDULER"
      value = "false"
    }
  }

  logs_config {
    cloudwatch_logs {
      group_name = aws_cloudwatch_log_group.drift_scan.name
    }
  }

  tags = var.tags
}

resource "aws_cloudwatch_log_group" "batch_runner" {
  name              = "/aws/codebuild/${var.name_prefix}-batch-runner"
  retention_in_days = var.log_retention_days
  tags              = var.tags
}

resource "aws_codebuild_project" "batch_runner" {
  name          = "${var.name_prefix}-batch-runner"
  description   = "toilkit: one build per batch run, started by the batch-run state machine"
  service_role  = aws_iam_role.batch_runner.arn
  build_timeout = 60

  source {
    type      = "NO_SOURCE"
    buildspec = file("${path.module}/../buildspecs/batch-runner.yml")
  }

  artifacts {
    type = "NO_ARTIFACTS"
  }

  environment {
    compute_type = "BUILD_GENERAL1_SMALL"
    image        = var.batch_runner_image
    type         = "LINUX_CONTAINER"
    # An application image from ECR is pulled with the project's role.
    image_pull_credentials_type = startswith(var.batch_runner_image, "aws/codebuild/") ? "CODEBUILD" : "SERVICE_ROLE"
  }

  dynamic "vpc_config" {
    for_each = var.batch_runner_vpc == null ? [] : [var.batch_runner_vpc]
    content {
      vpc_id             = vpc_config.value.vpc_id
      subnets            = vpc_config.value.subnet_ids
      security_group_ids = vpc_config.value.security_group_ids
    }
  }

  logs_config {
    cloudwatch_logs {
      group_name = aws_cloudwatch_log_group.batch_runner.name
    }
  }

  tags = var.tags
}
