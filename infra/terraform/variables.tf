variable "name_prefix" {
  description = "Prefix of every resource name; must match TOILKIT_NAME_PREFIX of the services."
  type        = string
  default     = "toilkit"
}

variable "bucket_name" {
  description = "S3 bucket for large payloads, plans, logs and the event archive (globally unique). Default: <prefix>-artifacts-<account id>."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
