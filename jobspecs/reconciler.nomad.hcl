# The reconciler: ONE instance of `taskapi reconcile` (DESIGN §5.2): enforces task deadlines, re-places batch
# allocations Nomad >= 1.11 drains without replacing, archives every finished task before Nomad's GC (4 h).
# It is idempotent and safe to run twice, so a second copy during a deployment or a reschedule does no harm;
# count = 1 keeps the normal case to one.
#
#   nomad job run -var gateway_image=... -var archive_bucket=... -var gateway_role_arn=... -var aws_region=... \
#     jobspecs/reconciler.nomad.hcl
#
# Secrets: none here. Nomad token = the workload identity (identity { env = true }) with
# jobspecs/policies/gateway.hcl attached to this job (the reconciler needs the same rights):
#   nomad acl policy apply -namespace default -job taskapi-reconciler taskapi-reconciler jobspecs/policies/gateway.hcl
# AWS: the gateway's role, assumed with the platform node's instance profile (same as jobspecs/gateway.nomad.hcl).

variable "gateway_image" {
  type        = string
  description = "The Task API image (it provides the `taskapi` command), pinned by tag or digest."
}

variable "archive_bucket" {
  type        = string
  description = "S3 bucket of the archive of finished tasks (terraform output archive_bucket)."
}

variable "archive_prefix" {
  type        = string
  default     = "tasks"
  description = "Key prefix inside the archive bucket."
}

variable "gateway_role_arn" {
  type        = string
  description = "IAM role with access to the archive bucket (terraform output gateway_role_arn)."
}

variable "aws_region" {
  type        = string
  description = "AWS region of the cluster (terraform output region)."
}

variable "datacenters" {
  type        = list(string)
  default     = ["*"]
  description = "Datacenters the job may run in."
}

job "taskapi-reconciler" {
  type        = "service"
  node_pool   = "platform"
  datacenters = var.datacenters
  priority    = 80

  meta {
    component = "taskapi-reconciler"
  }

  group "reconciler" {
    count = 1

    restart {
      attempts = 5
      interval = "10m"
      delay    = "15s"
      mode     = "delay"
    }

    reschedule {
      unlimited      = true
      delay          = "30s"
      delay_function = "exponential"
      max_delay      = "10m"
    }

    task "reconciler" {
      driver       = "docker"
      kill_timeout = "30s"

      config {
        image   = var.gateway_image
        command = "taskapi"
        args    = ["reconcile"]
      }

      identity {
        env = true
      }

      env {
        TASKAPI_BACKEND    = "nomad"
        TASKAPI_LOG_LEVEL  = "info"
        TASKAPI_ARCHIVE    = "s3://${var.archive_bucket}/${var.archive_prefix}"
        NOMAD_ADDR         = "http://${attr.unique.network.ip-address}:4646"
        NOMAD_NAMESPACE    = "default"
        AWS_REGION         = var.aws_region
        AWS_CONFIG_FILE    = "${NOMAD_TASK_DIR}/aws.config"
      }

      template {
        data        = <<-EOT
        [default]
        region = ${var.aws_region}
        role_arn = ${var.gateway_role_arn}
        credential_source = Ec2InstanceMetadata
        EOT
        destination = "local/aws.config"
        change_mode = "restart"
      }

      resources {
        cpu    = 200
        memory = 256
      }
    }
  }
}
