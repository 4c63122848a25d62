# One pool of Nomad clients: a launch template and an Auto Scaling group with a mixed instances policy.
# Used once per entry of pools.json: on-demand (platform) or spot (cpu-spot, gpu-spot; min 0, 0% on-demand
# above a base of 0, price-capacity-optimized, capacity rebalance).

locals {
  spot = var.capacity == "spot"
}

resource "aws_launch_template" "this" {
  # checkov:skip=CKV_AWS_341: hop limit 1 on task pools; 2 only on the platform pool, whose jobs need the instance role
  name_prefix            = "${var.name}-"
  description            = "Nomad clients of pool ${var.pool}"
  image_id               = var.ami_id
  instance_type          = var.instance_types[0]
  user_data              = base64encode(var.user_data)
  vpc_security_group_ids = var.security_group_ids
  update_default_version = true
  ebs_optimized          = true

  iam_instance_profile {
    name = var.instance_profile
  }

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required" # IMDSv2 only
    http_put_response_hop_limit = var.metadata_hop_limit
    instance_metadata_tags      = "enabled"
  }

  monitoring {
    enabled = true
  }

  block_device_mappings {
    device_name = "/dev/sda1"
    ebs {
      volume_size           = var.root_volume_size
      volume_type           = "gp3"
      encrypted             = true
      kms_key_id            = var.kms_key_arn
      delete_on_termination = true
    }
  }

  tag_specifications {
    resource_type = "instance"
    tags          = merge(var.tags, { Name = var.name })
  }

  tag_specifications {
    resource_type = "volume"
    tags          = merge(var.tags, { Name = var.name })
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_autoscaling_group" "this" {
  name                = var.name
  min_size            = var.min_size
  max_size            = var.max_size
  desired_capacity    = var.desired_capacity
  vpc_zone_identifier = var.subnet_ids
  capacity_rebalance  = local.spot
  # EC2 health only: an ALB check failing while no job serves on a node (before `taskapi cluster up`, or
  # on a node the job does not run on) must not make the ASG replace the node in a loop.
  health_check_type         = "EC2"
  health_check_grace_period = 300
  target_group_arns         = var.target_group_arns
  wait_for_capacity_timeout = var.wait_for_capacity_timeout
  default_instance_warmup   = 120
  termination_policies      = ["OldestLaunchTemplate", "Default"]

  mixed_instances_policy {
    instances_distribution {
      on_demand_base_capacity                  = 0
      on_demand_percentage_above_base_capacity = local.spot ? 0 : 100
      on_demand_allocation_strategy            = "prioritized"
      spot_allocation_strategy                 = "price-capacity-optimized"
    }

    launch_template {
      launch_template_specification {
        launch_template_id = aws_launch_template.this.id
        version            = "$Latest"
      }

      dynamic "override" {
        for_each = var.instance_types
        content {
          instance_type = override.value
        }
      }
    }
  }

  dynamic "tag" {
    for_each = merge(var.tags, { Name = var.name })
    content {
      key                 = tag.key
      value               = tag.value
      propagate_at_launch = true
    }
  }

  lifecycle {
    # The Nomad Autoscaler owns the desired capacity once the cluster runs.
    ignore_changes = [desired_capacity]
  }
}
