# Only the built-in terraform_data resource: needs no provider download at all.
variable "release" {
  type    = string
  default = "v1"
}

resource "terraform_data" "release" {
  input = var.release
}

output "release" {
  value = terraform_data.release.output
}
