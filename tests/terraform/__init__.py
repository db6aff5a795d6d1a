"""Real Terraform for the tests: a Python provider, its filesystem mirror, sample modules."""
