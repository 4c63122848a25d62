# Security groups: closed except the ALB's listener (from var.ingress_cidrs) and what Nomad needs between its
# own nodes (4646-4648/tcp, 4648/udp, task ports) inside the cluster group. Outbound: HTTPS/HTTP for
# packages, images and AWS APIs. (DNS to the VPC resolver and NTP to 169.254.169.123 are not filtered.)

locals {
  listener_port = var.certificate_arn == null ? 80 : 443
  nomad_tcp     = { http = 4646, rpc = 4647, serf = 4648 }
}

resource "aws_security_group" "alb" {
  name        = "${var.name}-alb"
  description = "ALB of the ${var.name} gateway: its listener only"
  vpc_id      = module.network.vpc_id
  tags        = { Name = "${var.name}-alb" }
}

resource "aws_vpc_security_group_ingress_rule" "alb_listener" {
  # checkov:skip=CKV_AWS_260: port 80 is open only when no certificate_arn is given (HTTP-only deployments)
  for_each          = toset(var.ingress_cidrs)
  security_group_id = aws_security_group.alb.id
  description       = "Gateway listener"
  ip_protocol       = "tcp"
  from_port         = local.listener_port
  to_port           = local.listener_port
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_ingress_rule" "alb_nomad_api" {
  for_each          = toset(var.nomad_api_cidrs)
  security_group_id = aws_security_group.alb.id
  description       = "Nomad API listener for the operators' CIDRs"
  ip_protocol       = "tcp"
  from_port         = 4646
  to_port           = 4646
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_egress_rule" "alb_to_gateway" {
  security_group_id            = aws_security_group.alb.id
  description                  = "To the gateway on the platform nodes"
  ip_protocol                  = "tcp"
  from_port                    = var.gateway_port
  to_port                      = var.gateway_port
  referenced_security_group_id = aws_security_group.cluster.id
}

resource "aws_vpc_security_group_egress_rule" "alb_to_nomad" {
  count                        = length(var.nomad_api_cidrs) > 0 ? 1 : 0
  security_group_id            = aws_security_group.alb.id
  description                  = "To the Nomad servers' HTTP API"
  ip_protocol                  = "tcp"
  from_port                    = 4646
  to_port                      = 4646
  referenced_security_group_id = aws_security_group.cluster.id
}

resource "aws_security_group" "cluster" {
  name        = "${var.name}-nomad"
  description = "Nomad servers and clients of ${var.name}"
  vpc_id      = module.network.vpc_id
  tags        = { Name = "${var.name}-nomad" }
}

resource "aws_vpc_security_group_ingress_rule" "nomad_tcp" {
  security_group_id            = aws_security_group.cluster.id
  description                  = "Nomad HTTP, RPC and Serf between cluster nodes"
  ip_protocol                  = "tcp"
  from_port                    = local.nomad_tcp.http
  to_port                      = local.nomad_tcp.serf
  referenced_security_group_id = aws_security_group.cluster.id
}

resource "aws_vpc_security_group_ingress_rule" "nomad_serf_udp" {
  security_group_id            = aws_security_group.cluster.id
  description                  = "Nomad Serf gossip between cluster nodes"
  ip_protocol                  = "udp"
  from_port                    = local.nomad_tcp.serf
  to_port                      = local.nomad_tcp.serf
  referenced_security_group_id = aws_security_group.cluster.id
}

resource "aws_vpc_security_group_ingress_rule" "nomad_task_ports" {
  security_group_id            = aws_security_group.cluster.id
  description                  = "Nomad dynamic task ports between cluster nodes (Prometheus scrapes, services)"
  ip_protocol                  = "tcp"
  from_port                    = 20000
  to_port                      = 32000
  referenced_security_group_id = aws_security_group.cluster.id
}

resource "aws_vpc_security_group_ingress_rule" "gateway_from_alb" {
  security_group_id            = aws_security_group.cluster.id
  description                  = "Gateway port from the ALB"
  ip_protocol                  = "tcp"
  from_port                    = var.gateway_port
  to_port                      = var.gateway_port
  referenced_security_group_id = aws_security_group.alb.id
}

resource "aws_vpc_security_group_ingress_rule" "nomad_api_from_alb" {
  count                        = length(var.nomad_api_cidrs) > 0 ? 1 : 0
  security_group_id            = aws_security_group.cluster.id
  description                  = "Nomad HTTP API from the ALB"
  ip_protocol                  = "tcp"
  from_port                    = 4646
  to_port                      = 4646
  referenced_security_group_id = aws_security_group.alb.id
}

resource "aws_vpc_security_group_egress_rule" "cluster_internal" {
  security_group_id            = aws_security_group.cluster.id
  description                  = "Anything to the other cluster nodes (their ingress rules decide)"
  ip_protocol                  = "-1"
  referenced_security_group_id = aws_security_group.cluster.id
}

resource "aws_vpc_security_group_egress_rule" "cluster_https" {
  security_group_id = aws_security_group.cluster.id
  description       = "HTTPS out: releases, container images, AWS APIs"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_egress_rule" "cluster_http" {
  security_group_id = aws_security_group.cluster.id
  description       = "HTTP out: Ubuntu apt mirrors"
  ip_protocol       = "tcp"
  from_port         = 80
  to_port           = 80
  cidr_ipv4         = "0.0.0.0/0"
}
