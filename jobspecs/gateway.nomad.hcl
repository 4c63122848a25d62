# The Task API gateway: `taskapi serve --backend nomad` under gunicorn, two instances behind the ALB.
#
#   nomad job run \
#     -var gateway_image=<registry>/taskapi:<tag> \
#     -var archive_bucket=$(terraform -chdir=terraform output -raw archive_bucket) \
#     -var gateway_role_arn=$(terraform -chdir=terraform output -raw gateway_role_arn) \
#     -var aws_region=$(terraform -chdir=terraform output -raw region) \
#     jobspecs/gateway.nomad.hcl
#
# Placement: the platform pool (node_pool below = the "platform" entry of terraform/pools.json, the pool with
# serves_gateway = true; tests/jobspecs checks the two agree). Two instances on two different nodes: the port is
# STATIC (var.gateway_port = Terraform's var.gateway_port, 8080) because the ALB's target group is of type
# "instance" and registers every platform node of the ASG on that one port; /readyz is the target group's health
# check too, so a node without a healthy gateway is taken out of the ALB. Two instances need two platform nodes
# (pools.json: platform min 1, max 3): with a single node the second instance waits, blocked, for another one.
#
# Secrets: none in this file and none in the job (nothing secret can be read back with `nomad job inspect`).
#   - Nomad token: the task's workload identity (identity { env = true } → NOMAD_TOKEN, Nomad >= 1.7). Its
#     permissions come from jobspecs/policies/gateway.hcl, attached to this job:
#       nomad acl policy apply -namespace default -job taskapi-gateway taskapi-gateway jobspecs/policies/gateway.hcl
#   - API keys: the Nomad Variable nomad/jobs/taskapi-gateway, item api_keys (one key per line), which only this
#     job's tasks can read (implicit workload policy). It is rendered to the task's private secrets/ directory and
#     read through TASKAPI_API_KEYS_FILE, never put in the environment:
#       nomad var put nomad/jobs/taskapi-gateway api_keys=@keys.txt
#     The task does not start until the variable exists (the gateway refuses to serve beyond loopback without keys).
#   - AWS (archive bucket): no keys. boto3 assumes var.gateway_role_arn with the platform node's instance profile
#     (credential_source = Ec2InstanceMetadata in a rendered AWS config file; the platform pool's IMDS hop limit
#     is 2 so containers reach it).

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
  description = "Key prefix inside the archive bucket (terraform output archive_url ends with it)."
}

variable "gateway_role_arn" {
  type        = string
  description = "IAM role the gateway assumes for the archive bucket (terraform output gateway_role_arn)."
}

variable "aws_region" {
  type        = string
  description = "AWS region of the cluster (terraform output region)."
}

variable "gateway_port" {
  type        = number
  default     = 8080
  description = "Static port on the platform nodes: the ALB target group's port (Terraform var.gateway_port)."
}

variable "public_url" {
  type        = string
  default     = ""
  description = "Base URL clients use (the ALB's https URL, terraform output gateway_url); empty: from the request."
}

variable "gunicorn_workers" {
  type        = number
  default     = 2
  description = "gunicorn worker processes per instance (TASKAPI_WORKERS)."
}

variable "gunicorn_threads" {
  type        = number
  default     = 8
  description = "Threads per gunicorn worker (TASKAPI_THREADS); a followed log stream holds one."
}

variable "datacenters" {
  type        = list(string)
  default     = ["*"]
  description = "Datacenters the job may run in."
}

job "taskapi-gateway" {
  type        = "service"
  node_pool   = "platform"
  datacenters = var.datacenters
  priority    = 80

  meta {
    component = "taskapi-gateway"
  }

  update {
    max_parallel      = 1
    health_check      = "checks"
    min_healthy_time  = "10s"
    healthy_deadline  = "3m"
    progress_deadline = "10m"
    auto_revert       = true
  }

  group "gateway" {
    count = 2

    # One instance per node: the static port allows no more, and a lost node takes only half of the gateway.
    constraint {
      operator = "distinct_hosts"
      value    = "true"
    }

    # Prefer different availability zones (the ALB spans them).
    spread {
      attribute = "${attr.platform.aws.placement.availability-zone}"
    }

    network {
      port "http" {
        static = var.gateway_port
      }
    }

    service {
      provider = "nomad"
      name     = "taskapi-gateway"
      port     = "http"
      tags     = ["taskapi", "gateway"]

      check {
        name     = "readyz"
        type     = "http"
        path     = "/readyz"
        interval = "10s"
        timeout  = "3s"
      }
    }

    restart {
      attempts = 3
      interval = "5m"
      delay    = "10s"
      mode     = "delay"
    }

    task "gateway" {
      driver       = "docker"
      kill_timeout = "20s" # above gunicorn's graceful_timeout (10 s)

      config {
        image   = var.gateway_image
        command = "taskapi"
        args    = ["serve", "--backend", "nomad", "--host", "0.0.0.0", "--port", "${NOMAD_PORT_http}"]
        ports   = ["http"]
      }

      # The workload identity as NOMAD_TOKEN (a JWT, not a stored secret); policies/gateway.hcl grants the rest.
      identity {
        env = true
      }

      env {
        TASKAPI_BACKEND       = "nomad"
        TASKAPI_WORKERS       = var.gunicorn_workers
        TASKAPI_THREADS       = var.gunicorn_threads
        TASKAPI_LOG_LEVEL     = "info"
        TASKAPI_PUBLIC_URL    = var.public_url
        TASKAPI_ARCHIVE       = "s3://${var.archive_bucket}/${var.archive_prefix}"
        TASKAPI_API_KEYS_FILE = "${NOMAD_SECRETS_DIR}/api_keys"
        # The Nomad client agent of this node (its HTTP API proxies to the servers).
        NOMAD_ADDR      = "http://${attr.unique.network.ip-address}:4646"
        NOMAD_NAMESPACE = "default"
        AWS_REGION      = var.aws_region
        AWS_CONFIG_FILE = "${NOMAD_TASK_DIR}/aws.config"
      }

      # API keys from the job's Nomad Variable into the private secrets/ directory.
      template {
        data                 = <<-EOT
        {{- with nomadVar "nomad/jobs/taskapi-gateway" }}{{ .api_keys }}{{ end }}
        EOT
        destination          = "secrets/api_keys"
        change_mode          = "restart"
        error_on_missing_key = true
      }

      # AWS: assume the gateway role with the node's instance profile (no key anywhere).
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
        cpu    = 500
        memory = 512
      }
    }
  }
}
