"""The demo ``toilkit up`` prepares: a provider whose cloud is a JSON file, its Terraform
mirror, and an infrastructure repository that drifts (see :mod:`toilkit.demo.repo`)."""
