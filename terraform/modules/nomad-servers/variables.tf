variable "name" {
  description = "Name of the servers' ASG and prefix of their launch template."
  type        = string
}

variable "server_count" {
  description = "Number of Nomad servers (odd: 3 or 5)."
  type        = number
  default     = 3

  validation {
    condition     = contains([3, 5], var.server_count)
    error_message = "server_count must be 3 or 5."
  }
}

variable "instance_type" {
  description = "On-demand instance type of the servers."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets the servers spread over."
  type        = list(string)
}

variable "security_group_ids" {
  description = "Security groups of the servers."
  type        = list(string)
}

variable "instance_profile" {
  description = "IAM instance profile name of the servers."
  type        = string
}

variable "ami_id" {
  description = "AMI of the servers."
  type        = string
}

variable "user_data" {
  description = "Rendered cloud-init user data (no secrets: they come from SSM at boot)."
  type        = string
}

variable "root_volume_size" {
  description = "Root volume size in GiB."
  type        = number
  default     = 40
}

variable "kms_key_arn" {
  description = "KMS key for the EBS volumes; null = the account's default EBS key."
  type        = string
  default     = null
}

variable "target_group_arns" {
  description = "ALB target groups (the Nomad API listener), if exposed."
  type        = list(string)
  default     = []
}

variable "wait_for_capacity_timeout" {
  description = "How long Terraform waits for the servers to be in service."
  type        = string
  default     = "10m"
}

variable "tags" {
  description = "Tags of the ASG, propagated to instances and volumes (includes the retry_join tag)."
  type        = map(string)
  default     = {}
}
