# The ALB in front of the gateway (platform pool, port var.gateway_port, health check /readyz), with an
# optional Nomad API listener on 4646 (servers' target group) for the `taskapi cluster` commands.

locals {
  https = var.certificate_arn != null
}

resource "aws_lb" "this" {
  # checkov:skip=CKV_AWS_91: access logs need a log bucket with an ELB-writable policy; left to the operator
  # checkov:skip=CKV2_AWS_28: a WAF web ACL is an account-level decision (and cost); attach one to this ALB if needed
  # checkov:skip=CKV2_AWS_76: no WAF here (see CKV2_AWS_28)
  # checkov:skip=CKV2_AWS_20: the HTTP listener exists only without a certificate_arn, so there is no HTTPS to redirect to
  # checkov:skip=CKV_AWS_150: deletion protection is a variable (off by default so `terraform destroy` can tear the cluster down)
  name                       = "${var.name}-gw"
  load_balancer_type         = "application"
  internal                   = false
  subnets                    = var.public_subnet_ids
  security_groups            = [var.security_group_id]
  drop_invalid_header_fields = true
  enable_deletion_protection = var.deletion_protection
  idle_timeout               = 300 # log streaming with follow=true
}

resource "aws_lb_target_group" "gateway" {
  # checkov:skip=CKV_AWS_378: TLS ends at the ALB; the hop to the gateway stays inside the VPC's private subnets
  name                 = "${var.name}-gw"
  port                 = var.gateway_port
  protocol             = "HTTP"
  vpc_id               = var.vpc_id
  target_type          = "instance"
  deregistration_delay = 30

  health_check {
    path                = "/readyz"
    port                = "traffic-port"
    protocol            = "HTTP"
    matcher             = "200"
    interval            = 15
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }
}

resource "aws_lb_listener" "https" {
  count             = local.https ? 1 : 0
  load_balancer_arn = aws_lb.this.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = var.certificate_arn

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.gateway.arn
  }
}

resource "aws_lb_listener" "http" {
  # checkov:skip=CKV_AWS_2: plain HTTP only when no certificate_arn is given (then there is no HTTPS to redirect to)
  # checkov:skip=CKV_AWS_103: see CKV_AWS_2: with a certificate the HTTPS listener uses a TLS 1.2+ policy
  count             = local.https ? 0 : 1
  load_balancer_arn = aws_lb.this.arn
  port              = 80
  protocol          = "HTTP"

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.gateway.arn
  }
}

resource "aws_lb_target_group" "nomad" {
  # checkov:skip=CKV_AWS_378: TLS ends at the ALB; the hop to the servers stays inside the VPC's private subnets
  count                = var.expose_nomad_api ? 1 : 0
  name                 = "${var.name}-nomad"
  port                 = 4646
  protocol             = "HTTP"
  vpc_id               = var.vpc_id
  target_type          = "instance"
  deregistration_delay = 30

  health_check {
    path                = "/v1/agent/health?type=server"
    port                = "traffic-port"
    protocol            = "HTTP"
    matcher             = "200"
    interval            = 15
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }
}

resource "aws_lb_listener" "nomad" {
  # checkov:skip=CKV_AWS_2: HTTPS whenever certificate_arn is given; plain HTTP only without one, and only for nomad_api_cidrs
  # checkov:skip=CKV_AWS_103: with a certificate this listener uses a TLS 1.2+ policy
  count             = var.expose_nomad_api ? 1 : 0
  load_balancer_arn = aws_lb.this.arn
  port              = 4646
  protocol          = local.https ? "HTTPS" : "HTTP"
  ssl_policy        = local.https ? "ELBSecurityPolicy-TLS13-1-2-2021-06" : null
  certificate_arn   = var.certificate_arn

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.nomad[0].arn
  }
}
