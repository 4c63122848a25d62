variable "name" {
  description = "Cluster name: prefixes every resource and is the value of the Nomad retry_join tag."
  type        = string
  default     = "taskapi"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}[a-z0-9]$", var.name))
    error_message = "name must be 3-22 characters of lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "region" {
  description = "AWS region to deploy into."
  type        = string
  default     = "us-east-1"
}

variable "aws_endpoint_url" {
  description = "Send every AWS API call to this endpoint (e.g. http://127.0.0.1:5000 for moto). null = real AWS."
  type        = string
  default     = null
}

variable "tags" {
  description = "Extra tags on every resource."
  type        = map(string)
  default     = {}
}

# --- network ---------------------------------------------------------------------------------------------

variable "vpc_cidr" {
  description = "CIDR block of the VPC; split into one public and one private subnet per availability zone."
  type        = string
  default     = "10.40.0.0/16"

  validation {
    condition     = can(cidrnetmask(var.vpc_cidr)) && tonumber(split("/", var.vpc_cidr)[1]) <= 20
    error_message = "vpc_cidr must be a valid IPv4 CIDR of /20 or larger."
  }
}

variable "az_count" {
  description = "How many availability zones to spread subnets (and so spot capacity) over."
  type        = number
  default     = 3

  validation {
    condition     = var.az_count >= 2 && var.az_count <= 6
    error_message = "az_count must be between 2 and 6."
  }
}

variable "single_nat_gateway" {
  description = "One NAT gateway for all AZs (cheaper) instead of one per AZ (survives the loss of an AZ)."
  type        = bool
  default     = true
}

# --- load balancer ---------------------------------------------------------------------------------------

variable "certificate_arn" {
  description = "ACM certificate ARN for the ALB: an HTTPS listener on 443 when set, else a plain HTTP listener on 80."
  type        = string
  default     = null

  validation {
    condition     = var.certificate_arn == null || can(regex("^arn:aws[a-z-]*:acm:", var.certificate_arn))
    error_message = "certificate_arn must be an ACM certificate ARN (arn:aws:acm:...)."
  }
}

variable "ingress_cidrs" {
  description = "CIDR blocks allowed to reach the gateway through the ALB listener."
  type        = list(string)
  default     = ["0.0.0.0/0"]

  validation {
    condition     = alltrue([for c in var.ingress_cidrs : can(cidrnetmask(c))])
    error_message = "Every ingress_cidrs entry must be an IPv4 CIDR block."
  }
}

variable "nomad_api_cidrs" {
  description = "CIDR blocks allowed to reach the Nomad API through the ALB on port 4646 (for `taskapi cluster up`). Empty = the Nomad API is not exposed."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.nomad_api_cidrs : can(cidrnetmask(c))])
    error_message = "Every nomad_api_cidrs entry must be an IPv4 CIDR block."
  }
}

variable "public_url" {
  description = "URL clients use for the gateway, e.g. https://tasks.example.com (your DNS record pointing at the ALB, matching certificate_arn); null = the ALB's own URL."
  type        = string
  default     = null

  validation {
    condition     = var.public_url == null || can(regex("^https?://[^/]+$", var.public_url))
    error_message = "public_url must be a scheme and host without a path, like https://tasks.example.com."
  }
}

variable "gateway_port" {
  description = "Port the gateway job listens on, on the platform nodes (the ALB's target port)."
  type        = number
  default     = 8080
}

# --- Nomad -----------------------------------------------------------------------------------------------

variable "nomad_version" {
  description = "Nomad release installed on every node (pinned, checksum verified)."
  type        = string
  default     = "1.11.1"

  validation {
    condition     = can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+(\\+ent)?$", var.nomad_version))
    error_message = "nomad_version must look like 1.11.1."
  }
}

variable "nomad_sha256" {
  description = "SHA256 of nomad_<version>_linux_amd64.zip, from https://releases.hashicorp.com/nomad/<version>/nomad_<version>_SHA256SUMS. Boot fails if the download does not match."
  type        = string

  validation {
    condition     = can(regex("^[0-9a-f]{64}$", var.nomad_sha256))
    error_message = "nomad_sha256 must be 64 lowercase hex digits."
  }
}

variable "nvidia_plugin_version" {
  description = "nomad-device-nvidia release installed on GPU nodes."
  type        = string
  default     = "1.1.0"

  validation {
    condition     = can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+$", var.nvidia_plugin_version))
    error_message = "nvidia_plugin_version must look like 1.1.0."
  }
}

variable "nvidia_plugin_sha256" {
  description = "SHA256 of nomad-device-nvidia_<version>_linux_amd64.zip (from its SHA256SUMS file)."
  type        = string

  validation {
    condition     = can(regex("^[0-9a-f]{64}$", var.nvidia_plugin_sha256))
    error_message = "nvidia_plugin_sha256 must be 64 lowercase hex digits."
  }
}

variable "nvidia_container_toolkit_version" {
  description = "Version of the nvidia-container-toolkit apt package on GPU nodes (e.g. 1.17.8-1); null = the newest."
  type        = string
  default     = null
}

variable "nomad_gossip_key" {
  description = "Nomad gossip encryption key (base64 of 32 random bytes: `openssl rand -base64 32`). Stored as an SSM SecureString; servers fetch it at boot. Never in user data."
  type        = string
  sensitive   = true

  validation {
    condition     = can(regex("^[A-Za-z0-9+/]{43}=$", var.nomad_gossip_key))
    error_message = "nomad_gossip_key must be the base64 of 32 bytes (44 characters ending in '='): use `openssl rand -base64 32`."
  }
}

variable "nomad_acl_bootstrap_token" {
  description = "Secret ID of Nomad's initial management token (a UUID: `uuidgen`). Stored as an SSM SecureString; one server bootstraps ACLs with it."
  type        = string
  sensitive   = true

  validation {
    condition     = can(regex("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", var.nomad_acl_bootstrap_token))
    error_message = "nomad_acl_bootstrap_token must be a lowercase UUID (`uuidgen | tr A-Z a-z`)."
  }
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key for the SSM parameters and the archive bucket; null = AWS-managed keys (aws/ssm, SSE-S3)."
  type        = string
  default     = null
}

# --- instances -------------------------------------------------------------------------------------------

variable "ami_id" {
  description = "AMI of servers and CPU clients (Ubuntu 24.04 amd64 expected); null = the newest Canonical Ubuntu 24.04 image."
  type        = string
  default     = null
}

variable "gpu_ami_id" {
  description = "AMI of GPU clients, with NVIDIA drivers; null = the newest AWS Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 24.04)."
  type        = string
  default     = null
}

variable "server_instance_type" {
  description = "Instance type of the 3 Nomad servers (on-demand)."
  type        = string
  default     = "t3.small"
}

variable "root_volume_size" {
  description = "Root EBS volume size in GiB for every node (encrypted gp3)."
  type        = number
  default     = 40

  validation {
    condition     = var.root_volume_size >= 20
    error_message = "root_volume_size must be at least 20 GiB."
  }
}

variable "pool_overrides" {
  description = "Per-pool changes to the defaults in pools.json, keyed by pool name: sizes and instance types."
  type = map(object({
    min_size         = optional(number)
    max_size         = optional(number)
    desired_capacity = optional(number)
    instance_types   = optional(list(string))
  }))
  default = {}
}

variable "wait_for_capacity_timeout" {
  description = "How long Terraform waits for the ASGs to reach their desired capacity (\"0\" = do not wait)."
  type        = string
  default     = "10m"
}

# --- archive ---------------------------------------------------------------------------------------------

variable "archive_bucket_name" {
  description = "Name of the S3 bucket archiving finished tasks; null = <name>-archive-<account id>."
  type        = string
  default     = null
}

variable "archive_transition_days" {
  description = "Days after which archived objects move to STANDARD_IA."
  type        = number
  default     = 30
}

variable "archive_expiration_days" {
  description = "Days after which archived task records and logs are deleted (0 = keep forever)."
  type        = number
  default     = 365

  validation {
    condition     = var.archive_expiration_days >= 0
    error_message = "archive_expiration_days must be 0 (keep) or a positive number of days."
  }
}

variable "force_destroy_archive" {
  description = "Let `terraform destroy` delete the archive bucket even when it holds objects."
  type        = bool
  default     = false
}
