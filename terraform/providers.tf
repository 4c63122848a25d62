provider "aws" {
  region = var.region

  # Pointing every service at one endpoint (moto, LocalStack, a VPC endpoint proxy) lets the whole module be
  # applied offline; the skips are only taken when such an endpoint is given.
  skip_credentials_validation = var.aws_endpoint_url != null
  skip_requesting_account_id  = false
  skip_metadata_api_check     = var.aws_endpoint_url != null
  skip_region_validation      = var.aws_endpoint_url != null
  s3_use_path_style           = var.aws_endpoint_url != null

  dynamic "endpoints" {
    for_each = var.aws_endpoint_url == null ? [] : [var.aws_endpoint_url]
    content {
      autoscaling    = endpoints.value
      ec2            = endpoints.value
      elbv2          = endpoints.value
      iam            = endpoints.value
      s3             = endpoints.value
      ssm            = endpoints.value
      sts            = endpoints.value
      kms            = endpoints.value
      cloudwatch     = endpoints.value
      cloudwatchlogs = endpoints.value
    }
  }

  default_tags {
    tags = merge(var.tags, {
      "taskapi:cluster" = var.name
      "managed-by"      = "terraform"
    })
  }
}
