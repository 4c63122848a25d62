# Least privilege per role:
#   server   : ec2:DescribeInstances (retry_join by tag; the action has no resource-level scope) and
#              ssm:GetParameter on the cluster's own two SecureString parameters.
#   client   : ec2:DescribeInstances (retry_join) only: the spot pools run user code, so they get nothing else.
#   platform : the platform pool's nodes: retry_join plus sts:AssumeRole on the gateway and autoscaler roles.
#   gateway  : the archive bucket only (list the bucket, read/write/delete its objects).
#   autoscaler: describe ASGs (no resource scope exists), change capacity / terminate only in the
#              scalable pools' ASGs, by ARN.

data "aws_iam_policy_document" "ec2_assume" {
  statement {
    sid     = "EC2AssumeRole"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "retry_join" {
  statement {
    sid       = "NomadRetryJoinByTag"
    actions   = ["ec2:DescribeInstances"]
    resources = ["*"] # DescribeInstances supports no resource-level permissions
  }
}

# --- servers -------------------------------------------------------------------------------------------------

resource "aws_iam_role" "server" {
  name               = "${var.name}-nomad-server"
  description        = "Nomad servers of ${var.name}"
  assume_role_policy = data.aws_iam_policy_document.ec2_assume.json
}

data "aws_iam_policy_document" "server" {
  source_policy_documents = [data.aws_iam_policy_document.retry_join.json]

  statement {
    sid       = "ReadOwnNomadSecrets"
    actions   = ["ssm:GetParameter"]
    resources = var.server_parameter_arns
  }

  dynamic "statement" {
    for_each = var.kms_key_arn == null ? [] : [var.kms_key_arn]
    content {
      sid       = "DecryptOwnNomadSecrets"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]
    }
  }
}

resource "aws_iam_role_policy" "server" {
  name   = "nomad-server"
  role   = aws_iam_role.server.id
  policy = data.aws_iam_policy_document.server.json
}

resource "aws_iam_instance_profile" "server" {
  name = "${var.name}-nomad-server"
  role = aws_iam_role.server.name
}

# --- task clients (cpu-spot, gpu-spot) ----------------------------------------------------------------------

resource "aws_iam_role" "client" {
  name               = "${var.name}-nomad-client"
  description        = "Nomad clients of ${var.name} that run user tasks"
  assume_role_policy = data.aws_iam_policy_document.ec2_assume.json
}

resource "aws_iam_role_policy" "client" {
  name   = "nomad-client"
  role   = aws_iam_role.client.id
  policy = data.aws_iam_policy_document.retry_join.json
}

resource "aws_iam_instance_profile" "client" {
  name = "${var.name}-nomad-client"
  role = aws_iam_role.client.name
}

# --- platform clients ---------------------------------------------------------------------------------------

resource "aws_iam_role" "platform" {
  name               = "${var.name}-nomad-platform"
  description        = "Nomad clients of ${var.name} that run the platform jobs"
  assume_role_policy = data.aws_iam_policy_document.ec2_assume.json
}

data "aws_iam_policy_document" "platform" {
  source_policy_documents = [data.aws_iam_policy_document.retry_join.json]

  statement {
    sid       = "AssumePlatformJobRoles"
    actions   = ["sts:AssumeRole"]
    resources = [aws_iam_role.gateway.arn, aws_iam_role.autoscaler.arn]
  }
}

resource "aws_iam_role_policy" "platform" {
  name   = "nomad-platform"
  role   = aws_iam_role.platform.id
  policy = data.aws_iam_policy_document.platform.json
}

resource "aws_iam_instance_profile" "platform" {
  name = "${var.name}-nomad-platform"
  role = aws_iam_role.platform.name
}

# --- roles the platform jobs assume -------------------------------------------------------------------------

data "aws_iam_policy_document" "platform_assume" {
  statement {
    sid     = "PlatformNodesAssumeRole"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${var.partition}:iam::${var.account_id}:root"]
    }
    condition {
      test     = "ArnEquals"
      variable = "aws:PrincipalArn"
      values   = ["arn:${var.partition}:iam::${var.account_id}:role/${var.name}-nomad-platform"]
    }
  }
}

resource "aws_iam_role" "gateway" {
  name               = "${var.name}-gateway"
  description        = "The ${var.name} gateway and reconciler: the task archive bucket"
  assume_role_policy = data.aws_iam_policy_document.platform_assume.json
}

data "aws_iam_policy_document" "gateway" {
  statement {
    sid       = "ListArchive"
    actions   = ["s3:ListBucket", "s3:GetBucketLocation"]
    resources = [var.archive_bucket_arn]
  }

  statement {
    sid       = "ReadWriteArchive"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    resources = ["${var.archive_bucket_arn}/*"]
  }

  dynamic "statement" {
    for_each = var.kms_key_arn == null ? [] : [var.kms_key_arn]
    content {
      sid       = "ArchiveKey"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [statement.value]
    }
  }
}

resource "aws_iam_role_policy" "gateway" {
  name   = "archive-bucket"
  role   = aws_iam_role.gateway.id
  policy = data.aws_iam_policy_document.gateway.json
}

resource "aws_iam_role" "autoscaler" {
  name               = "${var.name}-autoscaler"
  description        = "The ${var.name} Nomad Autoscaler: capacity of the scalable pools' ASGs"
  assume_role_policy = data.aws_iam_policy_document.platform_assume.json
}

data "aws_iam_policy_document" "autoscaler" {
  statement {
    sid = "DescribeScaling"
    actions = [
      "autoscaling:DescribeAutoScalingGroups",
      "autoscaling:DescribeAutoScalingInstances",
      "autoscaling:DescribeInstanceRefreshes",
      "autoscaling:DescribeScalingActivities",
      "ec2:DescribeInstances",
    ]
    resources = ["*"] # Describe* calls support no resource-level permissions (aws-asg needs these four)
  }

  statement {
    sid = "ScalePools"
    actions = [
      "autoscaling:UpdateAutoScalingGroup",
      "autoscaling:SetDesiredCapacity",
      "autoscaling:TerminateInstanceInAutoScalingGroup",
      "autoscaling:CreateOrUpdateTags",
    ]
    resources = var.scalable_asg_arns
  }
}

resource "aws_iam_role_policy" "autoscaler" {
  name   = "scale-pools"
  role   = aws_iam_role.autoscaler.id
  policy = data.aws_iam_policy_document.autoscaler.json
}
