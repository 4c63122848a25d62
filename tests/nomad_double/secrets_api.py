"""Nomad Variables (``/v1/var/<path>``) and ACL policies (``/v1/acl/policy/<name>``) of the double.

Shapes follow Nomad's API docs: a variable is ``{"Namespace", "Path", "CreateIndex", "ModifyIndex",
"CreateTime", "ModifyTime", "Items"}``; a missing one is a text/plain 404 ``variable not found``; a policy
write answers 200 with an empty body, and a policy may be attached to a job through ``JobACL``.
"""

from __future__ import annotations

from typing import Any

from .cluster import Cluster, NomadError


class SecretsStore:
    """Variables and policies, stamped with the cluster's raft index."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.variables: dict[tuple[str, str], dict[str, Any]] = {}
        self.policies: dict[str, dict[str, Any]] = {}

    def get_variable(self, namespace: str, path: str) -> dict[str, Any]:
        """A variable with its items; 404 if missing."""
        with self.cluster.lock:
            found = self.variables.get((namespace, path))
            if found is None:
                raise NomadError(404, "variable not found")
            return dict(found)

    def put_variable(self, namespace: str, path: str, body: Any, cas: int | None) -> dict[str, Any]:
        """Create or replace a variable (check-and-set on ``cas`` when given)."""
        items = body.get("Items") if isinstance(body, dict) else None
        if not isinstance(items, dict) or not items:
            raise NomadError(400, "variable missing required Items object")
        if not all(isinstance(v, str) for v in items.values()):
            raise NomadError(400, "variable items must be strings")
        with self.cluster.lock:
            current = self.variables.get((namespace, path))
            if cas is not None and (current["ModifyIndex"] if current else 0) != cas:
                raise NomadError(409, "cas conflict")
            index = self.cluster.bump()
            now = self.cluster.clock.now_ns()
            variable = {
                "Namespace": namespace,
                "Path": path,
                "CreateIndex": current["CreateIndex"] if current else index,
                "ModifyIndex": index,
                "CreateTime": current["CreateTime"] if current else now,
                "ModifyTime": now,
                "Items": dict(items),
            }
            self.variables[(namespace, path)] = variable
            return dict(variable)

    def put_policy(self, name: str, body: Any) -> None:
        """Create or replace an ACL policy."""
        if not isinstance(body, dict) or not body.get("Rules"):
            raise NomadError(400, "Missing policy rules")
        if body.get("Name", name) != name:
            raise NomadError(400, "Policy name does not match request path")
        with self.cluster.lock:
            index = self.cluster.bump()
            existing = self.policies.get(name)
            self.policies[name] = {
                "Name": name,
                "Description": body.get("Description", ""),
                "Rules": body["Rules"],
                "JobACL": body.get("JobACL"),
                "CreateIndex": existing["CreateIndex"] if existing else index,
                "ModifyIndex": index,
            }

    def get_policy(self, name: str) -> dict[str, Any]:
        """An ACL policy; 404 if missing."""
        with self.cluster.lock:
            found = self.policies.get(name)
            if found is None:
                raise NomadError(404, "ACL policy not found")
            return dict(found)
