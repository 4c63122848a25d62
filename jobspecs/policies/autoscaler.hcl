# ACL policy of the Nomad Autoscaler (jobspecs/autoscaler.nomad.hcl), attached to its workload identity:
#
#   nomad acl policy apply -namespace default -job nomad-autoscaler nomad-autoscaler jobspecs/policies/autoscaler.hcl
#
# Cluster scaling reads the nodes of a pool, drains and purges the ones it removes (node write) and reads the
# jobs and allocations on them (namespace read). The service lookup of Prometheus uses the implicit workload
# policy (services are readable by every workload).

node {
  policy = "write"
}

namespace "*" {
  policy = "read"
}
