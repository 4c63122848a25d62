variable "bucket_name" {
  description = "Name of the archive bucket."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key for SSE-KMS; null = SSE-S3 (AES256)."
  type        = string
  default     = null
}

variable "transition_days" {
  description = "Days after which objects move to STANDARD_IA (30 at least)."
  type        = number
  default     = 30
}

variable "expiration_days" {
  description = "Days after which objects are deleted; 0 = never."
  type        = number
  default     = 365
}

variable "force_destroy" {
  description = "Allow destroying the bucket while it holds objects."
  type        = bool
  default     = false
}
