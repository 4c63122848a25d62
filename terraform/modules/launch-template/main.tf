# The launch template every Nomad node starts from (servers and each client pool): IMDSv2 only, an encrypted
# gp3 root volume, detailed monitoring, no public IP (nodes live in private subnets), tags on instance and disk.
# One module, so that these rules are written once.

resource "aws_launch_template" "this" {
  # checkov:skip=CKV_AWS_341: hop limit 1 on servers and task pools; 2 only on the platform pool, whose jobs need the instance role
  name_prefix            = "${var.name}-"
  description            = var.description
  image_id               = var.ami_id
  instance_type          = var.instance_type
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
