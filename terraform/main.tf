# Task API on Nomad: a VPC, 3 Nomad servers, one client pool per entry of pools.json (platform on-demand,
# cpu-spot and gpu-spot scaling to zero), an ALB in front of the gateway, the task archive bucket and IAM.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

data "aws_ami" "ubuntu" {
  count       = var.ami_id == null ? 1 : 0
  most_recent = true
  owners      = ["099720109477"] # Canonical

  filter {
    name   = "name"
    values = ["ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*"]
  }
}

data "aws_ami" "gpu" {
  count       = var.gpu_ami_id == null ? 1 : 0
  most_recent = true
  owners      = ["amazon"]

  filter {
    name   = "name"
    values = ["Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 24.04) *"]
  }
}

locals {
  # The single definition of the pools, shared with the gateway (gateway/pools.py reads the same file).
  pool_definitions = jsondecode(file("${path.module}/pools.json"))
  pools = {
    for p in local.pool_definitions.pools : p.name => merge(
      p,
      { for k, v in try(var.pool_overrides[p.name], {}) : k => v if v != null },
    )
  }

  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  ami_id     = coalesce(var.ami_id, try(data.aws_ami.ubuntu[0].id, null))
  gpu_ami_id = coalesce(var.gpu_ami_id, try(data.aws_ami.gpu[0].id, null))

  datacenter         = var.region
  join_tag_key       = "NomadJoin"
  retry_join         = "provider=aws region=${var.region} tag_key=${local.join_tag_key} tag_value=${var.name} addr_type=private_v4"
  nvidia_plugin_name = "nomad-device-nvidia"
  server_count       = 3

  archive_prefix      = "tasks"
  archive_bucket_name = coalesce(var.archive_bucket_name, "${var.name}-archive-${local.account_id}")

  # Pools that run tasks scale to zero: the Nomad Autoscaler may resize exactly these ASGs.
  scalable_asg_arns = [
    for name, p in local.pools :
    "arn:${local.partition}:autoscaling:${var.region}:${local.account_id}:autoScalingGroup:*:autoScalingGroupName/${var.name}-${name}"
    if p.runs_tasks
  ]

  common_user_data = {
    region                = var.region
    nomad_version         = var.nomad_version
    nomad_sha256          = var.nomad_sha256
    nvidia_plugin_name    = local.nvidia_plugin_name
    nvidia_plugin_version = var.nvidia_plugin_version
    nvidia_plugin_sha256  = var.nvidia_plugin_sha256
    toolkit_version       = var.nvidia_container_toolkit_version == null ? "" : var.nvidia_container_toolkit_version
    gossip_key_parameter  = aws_ssm_parameter.gossip_key.name
    acl_token_parameter   = aws_ssm_parameter.acl_bootstrap_token.name
  }

  server_user_data = templatefile("${path.module}/templates/user-data.sh.tftpl", merge(local.common_user_data, {
    role = "server"
    gpu  = false
    nomad_config = templatefile("${path.module}/templates/nomad-server.hcl.tftpl", {
      datacenter   = local.datacenter
      server_count = local.server_count
      retry_join   = local.retry_join
    })
  }))

  client_user_data = {
    for name, p in local.pools : name => templatefile("${path.module}/templates/user-data.sh.tftpl", merge(local.common_user_data, {
      role = "client"
      gpu  = p.gpu
      nomad_config = templatefile("${path.module}/templates/nomad-client.hcl.tftpl", {
        datacenter         = local.datacenter
        pool               = name
        node_pool          = p.node_pool
        node_class         = p.node_class
        capacity           = p.capacity
        gpu                = p.gpu
        retry_join         = local.retry_join
        nvidia_plugin_name = local.nvidia_plugin_name
      })
    }))
  }
}

resource "terraform_data" "pool_overrides_check" {
  input = keys(var.pool_overrides)

  lifecycle {
    precondition {
      condition     = alltrue([for k in keys(var.pool_overrides) : contains(keys(local.pools), k)])
      error_message = "pool_overrides names a pool that pools.json does not define (known: ${join(", ", keys(local.pools))})."
    }
    precondition {
      condition     = alltrue([for p in values(local.pools) : p.min_size <= p.desired_capacity && p.desired_capacity <= p.max_size])
      error_message = "Every pool needs min_size <= desired_capacity <= max_size."
    }
  }
}

# --- secrets: SSM SecureString parameters, read at boot by the servers' instance role ---------------------

resource "aws_ssm_parameter" "gossip_key" {
  # checkov:skip=CKV_AWS_337: the AWS-managed aws/ssm key by default; set kms_key_arn for a customer-managed key
  name        = "/${var.name}/nomad/gossip-key"
  description = "Nomad gossip encryption key of ${var.name}"
  type        = "SecureString"
  key_id      = var.kms_key_arn
  value       = var.nomad_gossip_key
}

resource "aws_ssm_parameter" "acl_bootstrap_token" {
  # checkov:skip=CKV_AWS_337: the AWS-managed aws/ssm key by default; set kms_key_arn for a customer-managed key
  name        = "/${var.name}/nomad/acl-bootstrap-token"
  description = "Secret ID of the initial Nomad management token of ${var.name}"
  type        = "SecureString"
  key_id      = var.kms_key_arn
  value       = var.nomad_acl_bootstrap_token
}

# --- modules -------------------------------------------------------------------------------------------------

module "network" {
  source             = "./modules/network"
  name               = var.name
  cidr               = var.vpc_cidr
  az_count           = var.az_count
  single_nat_gateway = var.single_nat_gateway
}

module "archive_bucket" {
  source          = "./modules/archive-bucket"
  bucket_name     = local.archive_bucket_name
  kms_key_arn     = var.kms_key_arn
  transition_days = var.archive_transition_days
  expiration_days = var.archive_expiration_days
  force_destroy   = var.force_destroy_archive
}

module "iam" {
  source                = "./modules/iam"
  name                  = var.name
  partition             = local.partition
  account_id            = local.account_id
  server_parameter_arns = [aws_ssm_parameter.gossip_key.arn, aws_ssm_parameter.acl_bootstrap_token.arn]
  archive_bucket_arn    = module.archive_bucket.arn
  scalable_asg_arns     = local.scalable_asg_arns
  kms_key_arn           = var.kms_key_arn
}

module "gateway_lb" {
  source            = "./modules/gateway-lb"
  name              = var.name
  vpc_id            = module.network.vpc_id
  public_subnet_ids = module.network.public_subnet_ids
  security_group_id = aws_security_group.alb.id
  certificate_arn   = var.certificate_arn
  gateway_port      = var.gateway_port
  expose_nomad_api  = length(var.nomad_api_cidrs) > 0
}

module "nomad_servers" {
  source                    = "./modules/nomad-servers"
  name                      = "${var.name}-nomad-server"
  server_count              = local.server_count
  instance_type             = var.server_instance_type
  subnet_ids                = module.network.private_subnet_ids
  security_group_ids        = [aws_security_group.cluster.id]
  instance_profile          = module.iam.server_instance_profile
  ami_id                    = local.ami_id
  user_data                 = local.server_user_data
  root_volume_size          = var.root_volume_size
  kms_key_arn               = var.kms_key_arn
  target_group_arns         = module.gateway_lb.nomad_target_group_arns
  wait_for_capacity_timeout = var.wait_for_capacity_timeout
  tags = {
    (local.join_tag_key) = var.name
    "taskapi:role"       = "nomad-server"
  }
}

module "pool" {
  source   = "./modules/client-pool"
  for_each = local.pools

  name               = "${var.name}-${each.key}"
  pool               = each.key
  capacity           = each.value.capacity
  instance_types     = each.value.instance_types
  min_size           = each.value.min_size
  max_size           = each.value.max_size
  desired_capacity   = each.value.desired_capacity
  subnet_ids         = module.network.private_subnet_ids
  security_group_ids = [aws_security_group.cluster.id]
  # Task pools run user code: their role only joins the cluster. The platform pool's may assume the
  # gateway and autoscaler roles, and its containers need IMDS (hop limit 2) to do so.
  instance_profile          = each.value.runs_tasks ? module.iam.client_instance_profile : module.iam.platform_instance_profile
  metadata_hop_limit        = each.value.runs_tasks ? 1 : 2
  ami_id                    = each.value.gpu ? local.gpu_ami_id : local.ami_id
  user_data                 = local.client_user_data[each.key]
  root_volume_size          = var.root_volume_size
  kms_key_arn               = var.kms_key_arn
  target_group_arns         = each.value.serves_gateway ? [module.gateway_lb.gateway_target_group_arn] : []
  wait_for_capacity_timeout = var.wait_for_capacity_timeout
  tags = {
    (local.join_tag_key) = var.name
    "taskapi:role"       = "nomad-client"
    "taskapi:pool"       = each.key
    "taskapi:node-pool"  = each.value.node_pool
    "taskapi:node-class" = each.value.node_class
  }

  depends_on = [terraform_data.pool_overrides_check]
}
