# The spot watcher (scripts/spot_watcher.py) on EVERY node of the spot pools: a system job. On a spot
# interruption notice, a rebalance recommendation or an ASG lifecycle change it records the interruption in the
# node's dynamic metadata, marks the node ineligible and stops each allocation on it so that Nomad places the
# replacements elsewhere (a drain would not: Nomad >= 1.11 does not replace drained batch allocations).
#
#   nomad acl policy apply -namespace default -job spot-watcher spot-watcher jobspecs/policies/spot-watcher.hcl
#   nomad job run jobspecs/spot-watcher.nomad.hcl            # from the repository root (see watcher_script)
#
# Driver: exec, not raw_exec. The script needs only the host's python3 (standard library), IMDS and the local
# Nomad agent: exec gives it that inside a chroot with its own PID/IPC namespaces and cgroup limits, running as
# nobody, while raw_exec would run it unisolated as root and must be enabled explicitly in the client
# configuration (terraform/templates/nomad-client.hcl.tftpl does not, and should not: the spot nodes run user
# code). exec uses the host network (no group network block), so IMDS at 169.254.169.254 answers with the spot
# pools' hop limit of 1 (a bridge network would need 2).
#
# The script reaches the job as the text of the variable watcher_script: `taskapi cluster up` passes the file's
# content (registration goes through /v1/jobs/parse, which has no file access); by hand:
#   nomad job run -var "watcher_script=$(cat scripts/spot_watcher.py)" jobspecs/spot-watcher.nomad.hcl
# Template delimiters are set to strings the script does not contain, so its text is copied verbatim.
#
# Secrets: none. NOMAD_TOKEN is the task's workload identity; it talks to the local agent through the Task API
# socket (secrets/api.sock, authenticated by that identity, no TLS or address to configure). Its rights come
# from jobspecs/policies/spot-watcher.hcl (node write; read jobs and stop allocations in every namespace).

variable "watcher_script" {
  type        = string
  description = "The text of scripts/spot_watcher.py."
}

variable "interval" {
  type        = number
  default     = 5
  description = "Seconds between two IMDS polls."
}

variable "on_rebalance" {
  type        = string
  default     = "evacuate"
  description = "On a rebalance recommendation: evacuate (stop allocations too) or cordon (ineligible only)."
}

variable "datacenters" {
  type        = list(string)
  default     = ["*"]
  description = "Datacenters the job may run in."
}

job "spot-watcher" {
  type        = "system"
  node_pool   = "all"
  datacenters = var.datacenters
  priority    = 90

  # Only the spot pools (terraform/pools.json entries with capacity "spot"; tests/jobspecs checks it).
  constraint {
    attribute = "${node.pool}"
    operator  = "set_contains_any"
    value     = "cpu-spot,gpu-spot"
  }

  group "watcher" {
    restart {
      attempts = 10
      interval = "5m"
      delay    = "5s"
      mode     = "delay"
    }

    task "watcher" {
      driver       = "exec"
      user         = "nobody"
      kill_signal  = "SIGTERM"
      kill_timeout = "10s"

      config {
        command = "/usr/bin/python3"
        args    = ["-u", "${NOMAD_TASK_DIR}/spot_watcher.py", "--interval", "${var.interval}", "--rebalance", "${var.on_rebalance}"]
      }

      identity {
        env = true
      }

      env {
        NOMAD_ADDR    = "unix://${NOMAD_SECRETS_DIR}/api.sock"
        NOMAD_NODE_ID = "${node.unique.id}"
      }

      template {
        data            = var.watcher_script
        destination     = "local/spot_watcher.py"
        perms           = "0555"
        left_delimiter  = "[[[no-template"
        right_delimiter = "no-template]]]"
        change_mode     = "restart"
      }

      resources {
        cpu    = 50
        memory = 64
      }
    }
  }
}
