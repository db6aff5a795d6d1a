# Objects in the JSON "cloud" of toilkit/demo/provider.py: edit that file after an
# apply and the next plan reports resource_drift.
terraform {
  required_providers {
    cloud = {
      source  = "terraform.toilkit.test/toilkit/cloud"
      version = "0.1.0"
    }
  }
}

# The cloud document comes from TOILKIT_CLOUD_FILE.
provider "cloud" {}

resource "cloud_bucket" "logs" {
  name       = "logs"
  versioning = true
  tags = {
    env  = "prod"
    team = "sre"
  }

  lifecycle_rule {
    prefix          = "tmp/"
    expiration_days = 7
  }
}

resource "cloud_queue" "jobs" {
  name               = "jobs"
  visibility_timeout = 30
  secret             = "initial-secret"
  tags = {
    env = "prod"
  }
}

resource "terraform_data" "release" {
  input = "v1"
}
