# The Nomad servers: an on-demand Auto Scaling group of a fixed size (3), joining each other by AWS tag.

module "launch_template" {
  source = "../launch-template"

  name               = var.name
  description        = "Nomad servers of ${var.name}"
  ami_id             = var.ami_id
  instance_type      = var.instance_type
  user_data          = var.user_data
  security_group_ids = var.security_group_ids
  instance_profile   = var.instance_profile
  root_volume_size   = var.root_volume_size
  kms_key_arn        = var.kms_key_arn
  tags               = var.tags
}

resource "aws_autoscaling_group" "this" {
  name                = var.name
  min_size            = var.server_count
  max_size            = var.server_count
  desired_capacity    = var.server_count
  vpc_zone_identifier = var.subnet_ids
  # EC2 health only: an ALB check failing while no job serves on a node (before `taskapi cluster up`, or
  # on a node the job does not run on) must not make the ASG replace the node in a loop.
  health_check_type         = "EC2"
  health_check_grace_period = 300
  target_group_arns         = var.target_group_arns
  wait_for_capacity_timeout = var.wait_for_capacity_timeout
  default_instance_warmup   = 120

  launch_template {
    id      = module.launch_template.id
    version = "$Latest"
  }

  dynamic "tag" {
    for_each = merge(var.tags, { Name = var.name })
    content {
      key                 = tag.key
      value               = tag.value
      propagate_at_launch = true
    }
  }
}
