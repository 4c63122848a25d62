variable "name" {
  description = "Cluster name: prefix of the roles."
  type        = string
}

variable "partition" {
  description = "AWS partition (aws, aws-cn, aws-us-gov)."
  type        = string
}

variable "account_id" {
  description = "AWS account ID."
  type        = string
}

variable "server_parameter_arns" {
  description = "ARNs of the SSM parameters the Nomad servers read at boot (gossip key, ACL bootstrap token)."
  type        = list(string)
}

variable "archive_bucket_arn" {
  description = "ARN of the task archive bucket the gateway writes."
  type        = string
}

variable "scalable_asg_arns" {
  description = "ARNs of the Auto Scaling groups the Nomad Autoscaler may resize (the scale-to-zero pools)."
  type        = list(string)
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key of the parameters and bucket, if any."
  type        = string
  default     = null
}
