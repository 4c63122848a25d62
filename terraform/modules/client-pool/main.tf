# One pool of Nomad clients: a launch template and an Auto Scaling group with a mixed instances policy.
# Used once per entry of pools.json: on-demand (platform) or spot (cpu-spot, gpu-spot; min 0, 0% on-demand
# above a base of 0, price-capacity-optimized, capacity rebalance).

locals {
  spot = var.capacity == "spot"
}

module "launch_template" {
  source = "../launch-template"

  name               = var.name
  description        = "Nomad clients of pool ${var.pool}"
  ami_id             = var.ami_id
  instance_type      = var.instance_types[0]
  user_data          = var.user_data
  security_group_ids = var.security_group_ids
  instance_profile   = var.instance_profile
  metadata_hop_limit = var.metadata_hop_limit
  root_volume_size   = var.root_volume_size
  kms_key_arn        = var.kms_key_arn
  tags               = var.tags
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
        launch_template_id = module.launch_template.id
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
