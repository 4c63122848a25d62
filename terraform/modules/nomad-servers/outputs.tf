output "asg_name" {
  description = "Name of the servers' Auto Scaling group."
  value       = aws_autoscaling_group.this.name
}

output "asg_arn" {
  description = "ARN of the servers' Auto Scaling group."
  value       = aws_autoscaling_group.this.arn
}

output "launch_template_id" {
  description = "ID of the servers' launch template."
  value       = aws_launch_template.this.id
}
