terraform {
  required_version = ">= 1.6"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # One major: 7.x may rename or drop arguments. The floor is the release whose schema
      # tests/infra/test_provider_schema.py checks this configuration against (package.json:
      # @cdktn/provider-aws is generated from hashicorp/aws 6.66.0), so every argument used
      # here exists in every version allowed (invoked_via_function_url alone needs 6.29).
      version = "~> 6.66"
    }
  }
}
