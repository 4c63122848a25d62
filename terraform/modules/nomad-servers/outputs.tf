output "asg_name" {
  description = "Name of the servers' Auto Scaling group."
  value       = aws_autoscaling_group.this.name
}

output "asg_arn" {
  description = "ARN of the servers' Auto Scaling group."
  value       = aws_autoscaling_group.this.arn
}
