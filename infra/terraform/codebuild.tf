# The CodeBuild projects: drift scans (daily, and on request from Slack) and batch runs.

resource "aws_s3_object" "toilkit_wheel" {
  bucket = aws_s3_bucket.artifacts.id
  key    = "releases/${basename(var.toilkit_wheel)}"
  source = var.toilkit_wheel
  etag   = filemd5(var.toilkit_wheel)
  tags   = var.tags
}

locals {
  # One scan of every state must end within this; the detector is told (run limit).
  drift_scan_timeout_minutes = 120
}

resource "aws_codebuild_project" "drift_scan" {
  name          = "${var.name_prefix}-drift-scan"
  description   = "toilkit: terraform plan for every state, drift published to the events topic"
  service_role  = aws_iam_role.service["drift_scan"].arn
  build_timeout = local.drift_scan_timeout_minutes

  source {
    type      = var.infra_repo_type
    location  = var.infra_repo_url
    buildspec = file("${path.module}/../buildspecs/drift-scan.yml")

    # The project's own credential for the Git host. Without it CodeBuild refuses to create
    # the project unless the account already has a source credential for that host, which
    # Terraform cannot see (docs/deploy.md: prerequisites).
    dynamic "auth" {
      for_each = var.infra_repo_connection_arn == null ? [] : [var.infra_repo_connection_arn]
      content {
        type     = "CODECONNECTIONS"
        resource = auth.value
      }
    }
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
    # The digest warns when a scan takes most of the build's time, before builds time out.
    environment_variable {
      name  = "TOILKIT_DETECTOR_RUN_LIMIT_SECONDS"
      value = tostring(local.drift_scan_timeout_minutes * 60)
    }
  }

  logs_config {
    cloudwatch_logs {
      group_name = aws_cloudwatch_log_group.service["drift_scan"].name
    }
  }

  lifecycle {
    precondition {
      condition     = var.infra_repo_type == "CODECOMMIT" || var.infra_repo_connection_arn != null
      error_message = "A ${var.infra_repo_type} source needs infra_repo_connection_arn: the ARN of an AWS CodeConnections connection to the Git host whose status is Available (docs/deploy.md, prerequisites)."
    }
  }

  # The role may write the build's logs and clone the repository before the first build.
  depends_on = [aws_iam_role_policy.drift_scan]
  tags       = var.tags
}

resource "aws_codebuild_project" "batch_runner" {
  name          = "${var.name_prefix}-batch-runner"
  description   = "toilkit: one build per batch run, started by the batch-run state machine"
  service_role  = aws_iam_role.service["batch_runner"].arn
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
      group_name = aws_cloudwatch_log_group.service["batch_runner"].name
    }
  }

  depends_on = [aws_iam_role_policy.batch_runner]
  tags       = var.tags
}
