variable "name" {
  description = "Name prefix of the load balancer and its target groups."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the target groups."
  type        = string
}

variable "public_subnet_ids" {
  description = "Public subnets the ALB spans."
  type        = list(string)
}

variable "security_group_id" {
  description = "Security group of the ALB (its listener ports are opened by the caller)."
  type        = string
}

variable "certificate_arn" {
  description = "ACM certificate: HTTPS on 443 when set, else HTTP on 80."
  type        = string
  default     = null
}

variable "gateway_port" {
  description = "Port of the gateway on the platform nodes."
  type        = number
  default     = 8080
}

variable "expose_nomad_api" {
  description = "Add a listener on 4646 forwarding to the Nomad servers."
  type        = bool
  default     = false
}

variable "deletion_protection" {
  description = "Enable ALB deletion protection."
  type        = bool
  default     = false
}
