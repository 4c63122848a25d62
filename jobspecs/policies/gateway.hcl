# ACL policy of the gateway and the reconciler (jobspecs/gateway.nomad.hcl, jobspecs/reconciler.nomad.hcl),
# attached to their workload identities:
#
#   nomad acl policy apply -namespace default -job taskapi-gateway taskapi-gateway jobspecs/policies/gateway.hcl
#   nomad acl policy apply -namespace default -job taskapi-reconciler taskapi-reconciler jobspecs/policies/gateway.hcl
#
# The Nomad backend registers the parameterized job of each Task API, dispatches tasks, reads jobs, summaries,
# allocations and logs, stops jobs (DELETE a task) and allocations (the reconciler re-places drained ones), and
# reads node names for the attempts. The job's own Nomad Variable (API keys) is readable through the implicit
# workload policy, so nothing here grants variables.

namespace "default" {
  capabilities = ["list-jobs", "parse-job", "read-job", "submit-job", "dispatch-job", "read-logs", "alloc-lifecycle"]
}

node {
  policy = "read"
}
