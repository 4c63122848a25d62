# Prometheus for the Nomad Autoscaler (scale to zero needs it: the autoscaler's built-in Nomad APM cannot scale a
# pool up from zero nodes). It runs on the platform pool, which never scales to zero.
#
#   nomad job run -var aws_region=... -var nomad_server_asg=$(terraform -chdir=terraform output -raw nomad_server_asg) \
#     jobspecs/prometheus.nomad.hcl
#
# What it scrapes (no Consul anywhere):
#   nomad-servers: every Nomad server's /v1/metrics?format=prometheus (no ACL token needed for that endpoint).
#     The job summary gauges the autoscaler queries (nomad_nomad_job_summary_queued / _running, per job and task
#     group, dispatched children included because the servers set disable_dispatched_job_summary_metrics = false)
#     exist only on the servers. Targets, either:
#       - var.nomad_server_targets: a static list of "ip:4646" (e.g. a fixed set of servers), or, when it is empty,
#       - ec2_sd_configs on the servers' Auto Scaling group (tag aws:autoscaling:groupName = var.nomad_server_asg),
#         with the platform node's instance profile (ec2:DescribeInstances is already granted for retry_join).
#   nomad-services: nomad_sd_configs (Nomad's own service catalog, provider = "nomad") for every service tagged
#     "metrics" (the autoscaler's /v1/metrics). It authenticates with this task's workload identity, read from
#     secrets/nomad_token (identity { file = true }); the implicit workload policy may list and read services.
#   taskapi-gateway: the gateway instances' /metrics (nomad_sd_configs, service taskapi-gateway), with a gateway
#     API key from the Nomad Variable nomad/jobs/prometheus (item gateway_api_key), rendered into secrets/:
#       nomad var put nomad/jobs/prometheus gateway_api_key=@key.txt
#     It carries taskapi_api_node_group{api, node_group}, the pool of each Task API (see autoscaler.nomad.hcl).
#
# Data lives in the allocation (ephemeral): the autoscaler only needs the last minutes.

variable "prometheus_image" {
  type        = string
  default     = "prom/prometheus:v2.53.3"
  description = "Prometheus image, pinned."
}

variable "aws_region" {
  type        = string
  description = "AWS region of the cluster (for ec2_sd_configs)."
}

variable "nomad_server_asg" {
  type        = string
  default     = ""
  description = "Auto Scaling group of the Nomad servers (terraform output nomad_server_asg), for ec2_sd_configs."
}

variable "nomad_server_targets" {
  type        = list(string)
  default     = []
  description = "Static \"ip:4646\" targets of the Nomad servers; when set, used instead of ec2_sd_configs."
}

variable "datacenters" {
  type        = list(string)
  default     = ["*"]
  description = "Datacenters the job may run in."
}

job "prometheus" {
  type        = "service"
  node_pool   = "platform"
  datacenters = var.datacenters
  priority    = 70

  group "prometheus" {
    count = 1

    network {
      port "http" {
        to = 9090
      }
    }

    service {
      provider = "nomad"
      name     = "prometheus"
      port     = "http"

      check {
        type     = "http"
        path     = "/-/healthy"
        interval = "10s"
        timeout  = "2s"
      }
    }

    task "prometheus" {
      driver = "docker"

      config {
        image = var.prometheus_image
        ports = ["http"]
        args = [
          "--config.file=/local/prometheus.yml",
          "--storage.tsdb.path=/alloc/data/prometheus",
          "--storage.tsdb.retention.time=2d",
          "--web.listen-address=0.0.0.0:9090",
        ]
      }

      # Workload identity as a file, for nomad_sd_configs (never in the config itself).
      identity {
        file = true
      }

      template {
        data          = <<-EOT
        global:
          scrape_interval: 10s
          evaluation_interval: 10s

        scrape_configs:
          - job_name: nomad-servers
            metrics_path: /v1/metrics
            params:
              format: [prometheus]
        %{~ if length(var.nomad_server_targets) > 0 }
            static_configs:
              - targets: ${jsonencode(var.nomad_server_targets)}
        %{~ else }
            ec2_sd_configs:
              - region: ${var.aws_region}
                port: 4646
                filters:
                  - name: "tag:aws:autoscaling:groupName"
                    values: ["${var.nomad_server_asg}"]
                  - name: instance-state-name
                    values: [running]
            relabel_configs:
              - source_labels: [__meta_ec2_instance_id]
                target_label: instance_id
        %{~ endif }

          - job_name: nomad-services
            metrics_path: /v1/metrics
            params:
              format: [prometheus]
            nomad_sd_configs:
              - server: "http://{{ env "attr.unique.network.ip-address" }}:4646"
                authorization:
                  credentials_file: /secrets/nomad_token
            relabel_configs:
              - source_labels: [__meta_nomad_tags]
                regex: ".*,metrics,.*"
                action: keep
              - source_labels: [__meta_nomad_service]
                target_label: service

          - job_name: taskapi-gateway
            metrics_path: /metrics
            authorization:
              credentials_file: /secrets/gateway_api_key
            nomad_sd_configs:
              - server: "http://{{ env "attr.unique.network.ip-address" }}:4646"
                authorization:
                  credentials_file: /secrets/nomad_token
            relabel_configs:
              - source_labels: [__meta_nomad_service]
                regex: taskapi-gateway
                action: keep
        EOT
        destination   = "local/prometheus.yml"
        change_mode   = "signal"
        change_signal = "SIGHUP"
      }

      # A gateway API key for its /metrics (taskapi_api_node_group: the node group of each Task API, which the
      # autoscaler's queries join on). From this job's Nomad Variable, item gateway_api_key; a missing variable
      # renders an empty file instead of blocking Prometheus (the gateway then answers 401 and the autoscaler
      # counts all Task API work for the default task pool).
      template {
        data        = <<-EOT
        {{- if nomadVarExists "nomad/jobs/prometheus" }}{{ with nomadVar "nomad/jobs/prometheus" }}{{ .gateway_api_key }}{{ end }}{{ end }}
        EOT
        destination = "secrets/gateway_api_key"
        change_mode = "noop" # Prometheus reads credentials_file at every scrape
      }

      resources {
        cpu    = 300
        memory = 512
      }
    }
  }
}
