output "gateway_url" {
  description = "URL of the Task API gateway: public_url, else the ALB's URL."
  value       = coalesce(var.public_url, module.gateway_lb.gateway_url)
}

output "alb_url" {
  description = "URL of the gateway on the ALB's own DNS name."
  value       = module.gateway_lb.gateway_url
}

output "nomad_address" {
  description = "URL of the Nomad API through the ALB (only when nomad_api_cidrs is set, else null)."
  value       = module.gateway_lb.nomad_url
}

output "alb_dns_name" {
  description = "DNS name of the ALB (point your own DNS record here)."
  value       = module.gateway_lb.dns_name
}

output "archive_bucket" {
  description = "S3 bucket of the task archive: TASKAPI_ARCHIVE=s3://<this>/tasks."
  value       = module.archive_bucket.bucket
}

output "archive_prefix" {
  description = "Key prefix of the task archive inside the bucket."
  value       = local.archive_prefix
}

output "archive_url" {
  description = "TASKAPI_ARCHIVE value for the gateway and reconciler jobs."
  value       = "s3://${module.archive_bucket.bucket}/${local.archive_prefix}"
}

output "datacenters" {
  description = "Nomad datacenters of the cluster's nodes (the jobspecs' datacenters variable)."
  value       = [local.datacenter]
}

output "gateway_port" {
  description = "Static port of the gateway on the platform nodes (the ALB target port)."
  value       = var.gateway_port
}

output "region" {
  description = "AWS region of the cluster."
  value       = var.region
}

output "vpc_id" {
  description = "ID of the VPC."
  value       = module.network.vpc_id
}

output "nomad_server_asg" {
  description = "Auto Scaling group of the Nomad servers."
  value       = module.nomad_servers.asg_name
}

output "pools" {
  description = "Each client pool: its ASG (for the autoscaler's aws-asg target), Nomad node_pool and node_class."
  value = {
    for name, p in local.pools : name => {
      asg_name   = module.pool[name].asg_name
      node_pool  = p.node_pool
      node_class = p.node_class
      capacity   = p.capacity
      gpu        = p.gpu
    }
  }
}

output "gateway_role_arn" {
  description = "Role the gateway/reconciler jobs assume for the archive bucket."
  value       = module.iam.gateway_role_arn
}

output "autoscaler_role_arn" {
  description = "Role the Nomad Autoscaler job assumes to resize the spot pools."
  value       = module.iam.autoscaler_role_arn
}

output "nomad_acl_token_parameter" {
  description = "SSM parameter holding the Nomad management token (read it with `aws ssm get-parameter --with-decryption`)."
  value       = aws_ssm_parameter.acl_bootstrap_token.name
}
