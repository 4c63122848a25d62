# ACL policy of the spot watcher (jobspecs/spot-watcher.nomad.hcl), attached to its workload identity:
#
#   nomad acl policy apply -namespace default -job spot-watcher \
#     -description "spot watcher: cordon and evacuate interrupted spot nodes" spot-watcher jobspecs/policies/spot-watcher.hcl
#
# What each rule is for:
#   node write  POST /v1/node/<id>/eligibility (mark ineligible), POST /v1/client/metadata (record the
#               interruption), GET /v1/node/<id>/allocations (with read-job below).
#   read-job    GET /v1/node/<id>/allocations lists only allocations of namespaces it may read;
#               GET /v1/allocation/<own id> (find the node when NOMAD_NODE_ID is missing).
#   alloc-lifecycle  POST /v1/allocation/<id>/stop, in every namespace (tasks run in any of them).
# Nothing else: no job submission, no variables, no agent or operator rights.

node {
  policy = "write"
}

namespace "*" {
  capabilities = ["read-job", "alloc-lifecycle"]
}
