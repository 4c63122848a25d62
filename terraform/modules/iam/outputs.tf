output "server_instance_profile" {
  description = "Instance profile name of the Nomad servers."
  value       = aws_iam_instance_profile.server.name
}

output "client_instance_profile" {
  description = "Instance profile name of the task pools (cpu-spot, gpu-spot)."
  value       = aws_iam_instance_profile.client.name
}

output "platform_instance_profile" {
  description = "Instance profile name of the platform pool."
  value       = aws_iam_instance_profile.platform.name
}

output "gateway_role_arn" {
  description = "Role the gateway and reconciler jobs assume (archive bucket access)."
  value       = aws_iam_role.gateway.arn
}

output "autoscaler_role_arn" {
  description = "Role the Nomad Autoscaler job assumes (ASG capacity of the scalable pools)."
  value       = aws_iam_role.autoscaler.arn
}

output "role_names" {
  description = "Every role this module created, by function."
  value = {
    server     = aws_iam_role.server.name
    client     = aws_iam_role.client.name
    platform   = aws_iam_role.platform.name
    gateway    = aws_iam_role.gateway.name
    autoscaler = aws_iam_role.autoscaler.name
  }
}
