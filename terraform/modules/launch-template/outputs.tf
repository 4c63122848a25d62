output "id" {
  description = "ID of the launch template."
  value       = aws_launch_template.this.id
}
