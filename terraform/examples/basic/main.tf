# The smallest real deployment: the root module with its defaults, HTTPS on a certificate you own, the
# Nomad API reachable from your office network, secrets passed in (e.g. TF_VAR_nomad_gossip_key).

terraform {
  required_version = ">= 1.5"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.100"
    }
  }
}

variable "certificate_arn" {
  description = "ACM certificate of the gateway's DNS name."
  type        = string
}

variable "office_cidr" {
  description = "Network allowed to reach the Nomad API (for `taskapi cluster up`)."
  type        = string
}

variable "nomad_sha256" {
  description = "SHA256 of the Nomad release zip."
  type        = string
}

variable "nvidia_plugin_sha256" {
  description = "SHA256 of the nomad-device-nvidia release zip."
  type        = string
}

variable "nomad_gossip_key" {
  description = "Gossip key: openssl rand -base64 32."
  type        = string
  sensitive   = true
}

variable "nomad_acl_bootstrap_token" {
  description = "Initial management token: uuidgen | tr A-Z a-z."
  type        = string
  sensitive   = true
}

module "taskapi" {
  source = "../.."

  name                      = "taskapi"
  region                    = "eu-west-1"
  certificate_arn           = var.certificate_arn
  nomad_api_cidrs           = [var.office_cidr]
  nomad_sha256              = var.nomad_sha256
  nvidia_plugin_sha256      = var.nvidia_plugin_sha256
  nomad_gossip_key          = var.nomad_gossip_key
  nomad_acl_bootstrap_token = var.nomad_acl_bootstrap_token

  pool_overrides = {
    "gpu-spot" = { max_size = 4, instance_types = ["g5.xlarge", "g6.xlarge", "g4dn.xlarge"] }
  }
}

output "gateway_url" {
  description = "URL of the gateway."
  value       = module.taskapi.gateway_url
}

output "nomad_address" {
  description = "URL of the Nomad API."
  value       = module.taskapi.nomad_address
}

output "archive_bucket" {
  description = "Archive bucket."
  value       = module.taskapi.archive_bucket
}
