variable "name" {
  description = "Name of the nodes (the template's name prefix and the Name tag)."
  type        = string
}

variable "description" {
  description = "What the nodes are."
  type        = string
}

variable "ami_id" {
  description = "AMI of the nodes."
  type        = string
}

variable "instance_type" {
  description = "Instance type of the template (a mixed instances policy may override it)."
  type        = string
}

variable "user_data" {
  description = "The rendered boot script (plain text; encoded here)."
  type        = string
}

variable "security_group_ids" {
  description = "Security groups of the nodes."
  type        = list(string)
}

variable "instance_profile" {
  description = "Instance profile (the nodes' IAM role)."
  type        = string
}

variable "metadata_hop_limit" {
  description = "IMDSv2 hop limit: 1 keeps containers away from the instance role."
  type        = number
  default     = 1

  validation {
    condition     = contains([1, 2], var.metadata_hop_limit)
    error_message = "metadata_hop_limit must be 1 or 2."
  }
}

variable "root_volume_size" {
  description = "Root volume size in GiB."
  type        = number
}

variable "kms_key_arn" {
  description = "KMS key for the EBS volumes; null = the account's default EBS key."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags of the instances and their volumes."
  type        = map(string)
  default     = {}
}
