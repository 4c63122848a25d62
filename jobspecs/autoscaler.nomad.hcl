# The Nomad Autoscaler: scales the spot pools (cpu-spot, gpu-spot) between 0 and their max_size with the
# aws-asg target, from Prometheus (jobspecs/prometheus.nomad.hcl). Runs on the platform pool, which never scales
# to zero (the autoscaler and Prometheus must outlive the nodes they remove).
#
#   nomad acl policy apply -namespace default -job nomad-autoscaler nomad-autoscaler jobspecs/policies/autoscaler.hcl
#   nomad job run -var aws_region=... -var autoscaler_role_arn=$(terraform ... output -raw autoscaler_role_arn) \
#     -var 'pool_asgs={"cpu-spot":"<asg>","gpu-spot":"<asg>"}' jobspecs/autoscaler.nomad.hcl
#   (pool_asgs: terraform output -json pools | jq 'map_values(.asg_name)')
#
# One cluster policy per spot pool (the pools of terraform/pools.json with capacity "spot"; tests/jobspecs checks
# names, node_pool/node_class and max against that file):
#   query     sum over that pool's Task API work of nomad_nomad_job_summary_queued + _running, OR on() vector(0)
#             (an idle cluster answers "no series": the vector(0) turns it into 0, i.e. scale to zero).
#             The job summary gauges carry the job ID but not the node pool, so the pool of a task is joined from
#             taskapi_api_node_group{api, node_group} (1 per Task API and node group it may use; exported
#             by the gateway's /metrics, scraped by Prometheus). Work of an API with no such series counts for
#             the default task pool (cpu-spot) so a missing series never strands tasks at zero nodes.
#   strategy  pass-through: the query's value IS the node count wanted (one node per queued or running task:
#             simple and never too small; the cooldown keeps it from flapping).
#   min 0, max = the pool's max_size.
#   target    aws-asg on the pool's ASG, nodes selected by node_pool AND node_class; scale-in picks only nodes
#             with no allocations but system ones (node_selector_strategy = "empty_ignore_system"), so a
#             scale-in never interrupts a task. node_drain_deadline (var.drain_deadline, default 4h, above the
#             default task timeout of 1h) only matters if a task lands on a node between its selection and its
#             drain: batch allocations are not replaced by a drain (Nomad >= 1.11), they run until done or until
#             the deadline; the reconciler re-places one killed there. System jobs (the spot watcher) are not
#             drained: they stay until the instance is gone. node_purge removes the terminated node from Nomad.
#
# Secrets: none. Nomad token = workload identity (NOMAD_TOKEN, read by the autoscaler like the nomad CLI does);
# AWS = var.autoscaler_role_arn assumed with the platform node's instance profile (rendered AWS config file).

variable "autoscaler_image" {
  type        = string
  default     = "hashicorp/nomad-autoscaler:0.4.5"
  description = "Nomad Autoscaler image, pinned (node_pool selection needs >= 0.4.0)."
}

variable "aws_region" {
  type        = string
  description = "AWS region of the cluster."
}

variable "autoscaler_role_arn" {
  type        = string
  description = "IAM role allowed to resize the spot pools' ASGs (terraform output autoscaler_role_arn)."
}

variable "pool_asgs" {
  type        = map(string)
  description = "ASG name of each spot pool: {\"cpu-spot\" = \"...\", \"gpu-spot\" = \"...\"} (terraform output pools)."
}

variable "drain_deadline" {
  type        = string
  default     = "4h"
  description = "How long a batch task on a node chosen for scale-in may keep running before it is killed."
}

variable "datacenters" {
  type        = list(string)
  default     = ["*"]
  description = "Datacenters the job may run in."
}

job "nomad-autoscaler" {
  type        = "service"
  node_pool   = "platform"
  datacenters = var.datacenters
  priority    = 90

  group "autoscaler" {
    count = 1

    network {
      port "http" {}
    }

    service {
      provider = "nomad"
      name     = "nomad-autoscaler"
      port     = "http"
      tags     = ["metrics"]

      check {
        type     = "http"
        path     = "/v1/health"
        interval = "10s"
        timeout  = "2s"
      }
    }

    task "autoscaler" {
      driver = "docker"

      config {
        image   = var.autoscaler_image
        command = "nomad-autoscaler"
        args    = ["agent", "-config", "/local/config.hcl"]
        ports   = ["http"]
      }

      identity {
        env = true
      }

      env {
        NOMAD_ADDR          = "http://${attr.unique.network.ip-address}:4646"
        AWS_REGION          = var.aws_region
        AWS_CONFIG_FILE     = "${NOMAD_TASK_DIR}/aws.config"
        AWS_SDK_LOAD_CONFIG = "1"
      }

      template {
        data        = <<-EOT
        [default]
        region = ${var.aws_region}
        role_arn = ${var.autoscaler_role_arn}
        credential_source = Ec2InstanceMetadata
        EOT
        destination = "local/aws.config"
        change_mode = "restart"
      }

      # Agent configuration. The Nomad address and token come from NOMAD_ADDR / NOMAD_TOKEN.
      template {
        data          = <<-EOT
        log_level = "INFO"

        http {
          bind_address = "0.0.0.0"
          bind_port    = {{ env "NOMAD_PORT_http" }}
        }

        policy {
          dir = "/local/policies"
        }

        telemetry {
          prometheus_metrics = true
          disable_hostname   = true
        }

        apm "prometheus" {
          driver = "prometheus"
          config = {
            address = "http://{{ range nomadService "prometheus" }}{{ .Address }}:{{ .Port }}{{ end }}"
          }
        }

        target "aws-asg" {
          driver = "aws-asg"
          config = {
            aws_region = "${var.aws_region}"
          }
        }

        strategy "pass-through" {
          driver = "pass-through"
        }
        EOT
        destination   = "local/config.hcl"
        change_mode   = "signal"
        change_signal = "SIGHUP"
      }

      # Scale-to-zero policy of the cpu-spot pool (the default task pool: it also takes work of APIs whose pool
      # is unknown to Prometheus).
      template {
        data          = <<-EOT
        scaling "cpu-spot" {
          enabled = true
          min     = 0
          max     = 20

          policy {
            cooldown            = "2m"
            evaluation_interval = "20s"

            check "queued_and_running" {
              source = "prometheus"
              query  = "sum((label_replace(nomad_nomad_job_summary_queued{exported_job=~\"taskapi-.+/dispatch-.+\"} + nomad_nomad_job_summary_running{exported_job=~\"taskapi-.+/dispatch-.+\"}, \"api\", \"$1\", \"exported_job\", \"taskapi-([^/]+)/.*\") * on(api) group_left() max by (api) (taskapi_api_node_group{node_group=\"cpu-spot\"})) or (label_replace(nomad_nomad_job_summary_queued{exported_job=~\"taskapi-.+/dispatch-.+\"} + nomad_nomad_job_summary_running{exported_job=~\"taskapi-.+/dispatch-.+\"}, \"api\", \"$1\", \"exported_job\", \"taskapi-([^/]+)/.*\") unless on(api) taskapi_api_node_group)) OR on() vector(0)"

              strategy "pass-through" {}
            }

            target "aws-asg" {
              aws_asg_name                  = "${var.pool_asgs["cpu-spot"]}"
              node_pool                     = "cpu-spot"
              node_class                    = "cpu-spot"
              node_selector_strategy        = "empty_ignore_system"
              node_drain_deadline           = "${var.drain_deadline}"
              node_drain_ignore_system_jobs = true
              node_purge                    = true
            }
          }
        }
        EOT
        destination   = "local/policies/cpu-spot.hcl"
        change_mode   = "signal"
        change_signal = "SIGHUP"
      }

      # Scale-to-zero policy of the gpu-spot pool.
      template {
        data          = <<-EOT
        scaling "gpu-spot" {
          enabled = true
          min     = 0
          max     = 8

          policy {
            cooldown            = "2m"
            evaluation_interval = "20s"

            check "queued_and_running" {
              source = "prometheus"
              query  = "sum(label_replace(nomad_nomad_job_summary_queued{exported_job=~\"taskapi-.+/dispatch-.+\"} + nomad_nomad_job_summary_running{exported_job=~\"taskapi-.+/dispatch-.+\"}, \"api\", \"$1\", \"exported_job\", \"taskapi-([^/]+)/.*\") * on(api) group_left() max by (api) (taskapi_api_node_group{node_group=\"gpu-spot\"})) OR on() vector(0)"

              strategy "pass-through" {}
            }

            target "aws-asg" {
              aws_asg_name                  = "${var.pool_asgs["gpu-spot"]}"
              node_pool                     = "gpu-spot"
              node_class                    = "gpu-spot"
              node_selector_strategy        = "empty_ignore_system"
              node_drain_deadline           = "${var.drain_deadline}"
              node_drain_ignore_system_jobs = true
              node_purge                    = true
            }
          }
        }
        EOT
        destination   = "local/policies/gpu-spot.hcl"
        change_mode   = "signal"
        change_signal = "SIGHUP"
      }

      resources {
        cpu    = 200
        memory = 256
      }
    }
  }
}
