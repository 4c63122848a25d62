output "dns_name" {
  description = "DNS name of the ALB."
  value       = aws_lb.this.dns_name
}

output "arn" {
  description = "ARN of the ALB."
  value       = aws_lb.this.arn
}

output "gateway_url" {
  description = "URL of the gateway through the ALB."
  value       = "${local.https ? "https" : "http"}://${aws_lb.this.dns_name}"
}

output "nomad_url" {
  description = "URL of the Nomad API through the ALB, or null when not exposed."
  value       = var.expose_nomad_api ? "${local.https ? "https" : "http"}://${aws_lb.this.dns_name}:4646" : null
}

output "gateway_target_group_arn" {
  description = "Target group of the gateway (platform pool instances)."
  value       = aws_lb_target_group.gateway.arn
}

output "nomad_target_group_arns" {
  description = "Target groups of the Nomad servers (empty when the API is not exposed)."
  value       = aws_lb_target_group.nomad[*].arn
}
