variable "name" {
  description = "Name of the ASG and prefix of its launch template."
  type        = string
}

variable "pool" {
  description = "Pool name (an entry of pools.json)."
  type        = string
}

variable "capacity" {
  description = "\"spot\" or \"on-demand\"."
  type        = string

  validation {
    condition     = contains(["spot", "on-demand"], var.capacity)
    error_message = "capacity must be \"spot\" or \"on-demand\"."
  }
}

variable "instance_types" {
  description = "Instance types of the mixed instances policy; the first one is the launch template's default."
  type        = list(string)

  validation {
    condition     = length(var.instance_types) >= 1
    error_message = "Give at least one instance type."
  }
}

variable "min_size" {
  description = "Minimum number of instances."
  type        = number
}

variable "max_size" {
  description = "Maximum number of instances."
  type        = number
}

variable "desired_capacity" {
  description = "Initial desired capacity (afterwards the autoscaler's)."
  type        = number
}

variable "subnet_ids" {
  description = "Private subnets the pool spreads over."
  type        = list(string)
}

variable "security_group_ids" {
  description = "Security groups of the instances."
  type        = list(string)
}

variable "instance_profile" {
  description = "IAM instance profile name."
  type        = string
}

variable "ami_id" {
  description = "AMI of the instances."
  type        = string
}

variable "user_data" {
  description = "Rendered cloud-init user data (no secrets)."
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

variable "metadata_hop_limit" {
  description = "IMDSv2 PUT response hop limit: 1 keeps bridge-networked containers away from the instance role."
  type        = number
  default     = 1
}

variable "target_group_arns" {
  description = "ALB target groups the instances register with."
  type        = list(string)
  default     = []
}

variable "wait_for_capacity_timeout" {
  description = "How long Terraform waits for the desired capacity."
  type        = string
  default     = "10m"
}

variable "tags" {
  description = "Tags of the ASG, propagated to instances and volumes (includes the retry_join tag)."
  type        = map(string)
  default     = {}
}
