"""The simulated Nomad cluster: raft index, jobs, evaluations, allocations, nodes and a test-driven scheduler.

Nothing here runs on a timer: placements, task starts and exits, lost nodes and the passing of time happen
only when the test (or an auto mode) says so. Every public method takes the cluster lock.
"""

from __future__ import annotations

import base64
import binascii
import copy
import fnmatch
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import jobspec
from .models import Alloc, Node, TaskRun, task_event
from .util import NS, Clock, Ids, format_go_duration, rfc3339, snappy_encode

DISPATCH_PAYLOAD_LIMIT = 16384
EVENT_BUFFER = 2000
LOST_DESC = "alloc is lost since its node is down"
MIGRATE_DESC = "alloc is being migrated"
RESCHEDULED_DESC = "alloc was rescheduled because it failed"
NOT_NEEDED_DESC = "alloc not needed due to job update"
MAX_RUN_DESC = "allocation exceeded max_run_duration"
JobKey = tuple[str, str]


class NomadError(Exception):
    """An API error: HTTP status and the plain-text message Nomad would send."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Placement:
    """An allocation the scheduler still has to place."""

    namespace: str
    job_id: str
    group: str
    index: int
    eval_id: str
    previous: Alloc | None = None
    reschedule_delay: int | None = None
    not_before: int = 0
    blocked: bool = False


def version_tuple(version: str) -> tuple[int, ...]:
    """``"2.0.3"`` → ``(2, 0, 3)``."""
    return tuple(int(p) for p in re.findall(r"\d+", version)[:3])


class Cluster:
    """All state of the double, guarded by one re-entrant lock with a condition for blocking queries."""

    def __init__(self, version: str, region: str, clock: Clock, ids: Ids, auto_place: bool,
                 auto_start: bool) -> None:
        self.version = version
        self.region = region
        self.clock = clock
        self.ids = ids
        self.auto_place = auto_place
        self.auto_start = auto_start
        self.supports_max_run_duration = version_tuple(version) >= (2, 0, 3)
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.index = 1
        self.tables: dict[str, int] = {t: 1 for t in ("jobs", "job_summary", "allocs", "evals", "nodes")}
        self.jobs: dict[JobKey, dict[str, Any]] = {}
        self.summary_index: dict[JobKey, tuple[int, int]] = {}
        self.allocs: dict[str, Alloc] = {}
        self.evals: dict[str, dict[str, Any]] = {}
        self.nodes: dict[str, Node] = {}
        self.placements: list[Placement] = []
        self.events: list[dict[str, Any]] = []
        self.events_dropped = 0
        self.closed = False
        self.waiters = 0

    # ------------------------------------------------------------------ plumbing

    def bump(self, *tables: str) -> int:
        """Apply one raft entry: increment the global index, stamp the tables, wake blocking queries."""
        self.index += 1
        for table in tables:
            self.tables[table] = self.index
        self.cond.notify_all()
        return self.index

    def publish(self, topic: str, etype: str, key: str, namespace: str, payload: dict[str, Any],
                filter_keys: list[str] | None = None) -> None:
        """Append an event to the event-stream buffer at the current index."""
        self.events.append({"Topic": topic, "Type": etype, "Key": key, "Namespace": namespace,
                            "FilterKeys": filter_keys, "Index": self.index, "Payload": payload})
        if len(self.events) > EVENT_BUFFER:
            drop = len(self.events) - EVENT_BUFFER
            del self.events[:drop]
            self.events_dropped += drop
        self.cond.notify_all()

    def wait_for_change(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Block on the cluster condition until ``predicate`` holds, the timeout passes or the double stops."""
        with self.cond:
            return self.cond.wait_for(lambda: self.closed or predicate(), timeout=timeout)

    # ------------------------------------------------------------------ lookups

    def job(self, namespace: str, job_id: str) -> dict[str, Any]:
        """A job or ``404 job not found``."""
        job = self.jobs.get((namespace, job_id))
        if job is None:
            raise NomadError(404, "job not found")
        return job

    def alloc(self, alloc_id: str) -> Alloc:
        """An allocation by full ID or unique prefix, or ``404 alloc not found``."""
        alloc = self.allocs.get(alloc_id)
        if alloc is None:
            matches = [a for a in self.allocs.values() if a.id.startswith(alloc_id)] if alloc_id else []
            if len(matches) != 1:
                raise NomadError(404, "alloc not found")
            alloc = matches[0]
        return alloc

    def node(self, node_id: str) -> Node:
        """A node by ID or unique prefix, or ``404 node not found``."""
        node = self.nodes.get(node_id)
        if node is None:
            matches = [n for n in self.nodes.values() if n.id.startswith(node_id)] if node_id else []
            if len(matches) != 1:
                raise NomadError(404, "node not found")
            node = matches[0]
        return node

    def job_allocs(self, namespace: str, job_id: str) -> list[Alloc]:
        """The allocations of a job in creation order."""
        return [a for a in self.allocs.values() if a.namespace == namespace and a.job_id == job_id]

    def summary(self, key: JobKey) -> dict[str, Any]:
        """The ``JobSummary`` JSON of a job, computed from its allocations and placements."""
        job = self.jobs[key]
        groups: dict[str, dict[str, int]] = {
            g["Name"]: {"Queued": 0, "Complete": 0, "Failed": 0, "Running": 0, "Starting": 0, "Lost": 0,
                        "Unknown": 0}
            for g in job["TaskGroups"] or []
        }
        for alloc in self.job_allocs(*key):
            counts = groups.get(alloc.task_group)
            if counts is None:
                continue
            field = {"pending": "Starting", "running": "Running", "complete": "Complete", "failed": "Failed",
                     "lost": "Lost", "unknown": "Unknown"}[alloc.client_status]
            counts[field] += 1
        for placement in self.placements:
            if (placement.namespace, placement.job_id) == key and placement.blocked and placement.group in groups:
                groups[placement.group]["Queued"] += 1
        children = {"Pending": 0, "Running": 0, "Dead": 0}
        for child in self.jobs.values():
            if child["Namespace"] == key[0] and child["ParentID"] == key[1]:
                children[child["Status"].capitalize()] = children.get(child["Status"].capitalize(), 0) + 1
        create, modify = self.summary_index.get(key, (job["CreateIndex"], job["ModifyIndex"]))
        return {"JobID": key[1], "Namespace": key[0], "Summary": groups, "Children": children,
                "CreateIndex": create, "ModifyIndex": modify}

    def touch_summary(self, key: JobKey) -> None:
        """Record that a job's summary changed at the current index (and its parent's children counts)."""
        if key not in self.jobs:
            return
        create = self.summary_index.get(key, (self.index, self.index))[0]
        self.summary_index[key] = (create, self.index)
        self.tables["job_summary"] = self.index
        parent = self.jobs[key]["ParentID"]
        if parent and (key[0], parent) in self.jobs:
            pcreate = self.summary_index.get((key[0], parent), (self.index, self.index))[0]
            self.summary_index[(key[0], parent)] = (pcreate, self.index)

    # ------------------------------------------------------------------ job status

    def job_status(self, key: JobKey) -> str:
        """Nomad's job status rule (state store ``getJobStatus``)."""
        job = self.jobs[key]
        parameterized = job.get("ParameterizedJob") is not None and not job.get("Dispatched")
        if job["Type"] == "system" or parameterized or job.get("Periodic") is not None:
            return "dead" if job["Stop"] else "running"
        allocs = self.job_allocs(*key)
        if any(not a.terminal() for a in allocs):
            return "running"
        evals = [e for e in self.evals.values() if e["Namespace"] == key[0] and e["JobID"] == key[1]]
        if any(e["Status"] in ("pending", "blocked") for e in evals):
            return "pending"
        return "dead" if (allocs or evals) else "pending"

    def refresh_job(self, key: JobKey) -> None:
        """Recompute a job's status; a change bumps its ModifyIndex (same raft entry as the cause)."""
        job = self.jobs.get(key)
        if job is None:
            return
        self.touch_summary(key)
        status = self.job_status(key)
        if status != job["Status"]:
            job["Status"] = status
            job["ModifyIndex"] = self.index
            self.tables["jobs"] = self.index
            self.publish("Job", "JobRegistered", key[1], key[0], {"Job": copy.deepcopy(job)})
            parent = job["ParentID"]
            if parent and (key[0], parent) in self.jobs:
                self.touch_summary((key[0], parent))

    # ------------------------------------------------------------------ evaluations

    def new_eval(self, job: dict[str, Any], triggered_by: str, status: str = "pending", node_id: str = "",
                 wait_until: int = 0, previous: str = "") -> dict[str, Any]:
        """Create an evaluation in its own raft entry."""
        idx = self.bump("evals")
        now = self.clock.now_ns()
        ev = {
            "ID": self.ids.uuid(), "Namespace": job["Namespace"], "Priority": job["Priority"], "Type": job["Type"],
            "TriggeredBy": triggered_by, "JobID": job["ID"], "JobModifyIndex": job["JobModifyIndex"],
            "NodeID": node_id, "NodeModifyIndex": 0, "DeploymentID": "", "Status": status,
            "StatusDescription": "", "Wait": 0, "WaitUntil": rfc3339(wait_until),
            "NextEval": "", "PreviousEval": previous, "BlockedEval": "", "RelatedEvals": None,
            "FailedTGAllocs": None, "ClassEligibility": None, "QuotaLimitReached": "",
            "EscapedComputedClass": False, "AnnotatePlan": False, "QueuedAllocations": None, "LeaderACL": "",
            "SnapshotIndex": 0, "CreateIndex": idx, "ModifyIndex": idx, "CreateTime": now, "ModifyTime": now,
        }
        self.evals[ev["ID"]] = ev
        self.publish("Evaluation", "EvaluationUpdated", ev["ID"], ev["Namespace"], {"Evaluation": copy.deepcopy(ev)},
                     [ev["JobID"], ev["DeploymentID"]])
        return ev

    def update_eval(self, ev: dict[str, Any], **fields: Any) -> None:
        """Change an evaluation at the current index."""
        ev.update(fields)
        ev["ModifyIndex"] = self.index
        ev["ModifyTime"] = self.clock.now_ns()
        self.tables["evals"] = self.index
        self.publish("Evaluation", "EvaluationUpdated", ev["ID"], ev["Namespace"], {"Evaluation": copy.deepcopy(ev)},
                     [ev["JobID"], ev["DeploymentID"]])

    # ------------------------------------------------------------------ jobs

    def register(self, job_in: dict[str, Any], namespace: str) -> dict[str, Any]:
        """``POST /v1/jobs``: create or update a job; non-parameterized jobs get an evaluation."""
        if not isinstance(job_in, dict):
            raise NomadError(400, "Job must be specified")
        if not job_in.get("Namespace"):
            job_in = {**job_in, "Namespace": namespace}
        try:
            job = jobspec.canonicalize(job_in, self.supports_max_run_duration)
        except jobspec.JobValidationError as exc:
            raise NomadError(400, str(exc)) from exc
        key = (job["Namespace"], job["ID"])
        old = self.jobs.get(key)
        if old is not None:
            old_param = old.get("ParameterizedJob") is not None
            new_param = job.get("ParameterizedJob") is not None
            if old_param and not new_param:
                raise NomadError(500, "cannot update parameterized job to being non-parameterized")
            if new_param and not old_param:
                raise NomadError(500, "cannot update non-parameterized job to being parameterized")
            if bool(old.get("Dispatched")) != bool(job.get("Dispatched")):
                raise NomadError(500, "field 'Dispatched' is read-only")
        idx = self.bump("jobs", "job_summary")
        job["CreateIndex"] = old["CreateIndex"] if old else idx
        job["ModifyIndex"] = idx
        job["JobModifyIndex"] = idx
        job["Version"] = (old["Version"] + (0 if same_spec(old, job) else 1)) if old else 0
        job["SubmitTime"] = self.clock.now_ns()
        job["Status"] = old["Status"] if old else "pending"
        job["StatusDescription"] = ""
        self.jobs[key] = job
        if old is None:
            self.summary_index[key] = (idx, idx)
        self.publish("Job", "JobRegistered", key[1], key[0], {"Job": copy.deepcopy(job)})
        reply = {"EvalID": "", "EvalCreateIndex": 0, "JobModifyIndex": idx, "Warnings": "", "Index": idx,
                 "LastContact": 0, "KnownLeader": False}
        if job.get("ParameterizedJob") is None and job.get("Periodic") is None and not job["Stop"]:
            ev = self.new_eval(job, "job-register")
            self.want_missing(key, ev["ID"])
            reply.update(EvalID=ev["ID"], EvalCreateIndex=ev["CreateIndex"], Index=ev["CreateIndex"])
        elif job["Stop"]:
            self.stop_job_allocs(key)
        self.refresh_job(key)
        self.auto()
        return reply

    def want_missing(self, key: JobKey, eval_id: str) -> None:
        """Queue placements for every group slot that has no live or successfully finished allocation."""
        job = self.jobs[key]
        allocs = self.job_allocs(*key)
        for group in job["TaskGroups"]:
            for index in range(group["Count"]):
                name = f"{job['ID']}.{group['Name']}[{index}]"
                if any(p.namespace == key[0] and p.job_id == key[1] and p.group == group["Name"]
                       and p.index == index for p in self.placements):
                    continue
                slot = [a for a in allocs if a.name == name]
                live = [a for a in slot if not a.terminal()]
                done = job["Type"] in ("batch", "sysbatch") and any(a.client_status == "complete" for a in slot)
                if live or done:
                    continue
                previous = slot[-1] if slot and not slot[-1].next_allocation else None
                self.placements.append(Placement(key[0], key[1], group["Name"], index, eval_id, previous))

    def dispatch(self, parent_id: str, namespace: str, body: dict[str, Any], token: str) -> dict[str, Any]:
        """``POST /v1/job/<id>/dispatch``."""
        if not parent_id:
            raise NomadError(500, "missing parameterized job ID")
        parent = self.jobs.get((namespace, parent_id))
        if parent is None:
            raise NomadError(500, "parameterized job not found")
        if parent.get("ParameterizedJob") is None or parent.get("Dispatched"):
            raise NomadError(500, f'Specified job "{parent_id}" is not a parameterized job')
        if parent["Stop"]:
            raise NomadError(500, f'Specified job "{parent_id}" is stopped')
        raw = body.get("Payload")
        try:
            payload = base64.b64decode(raw, validate=True) if raw else b""
        except (binascii.Error, TypeError, ValueError) as exc:
            raise NomadError(400, f"illegal base64 data: {exc}") from exc
        meta = body.get("Meta") or {}
        if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
            raise NomadError(400, "json: cannot unmarshal into Go struct field JobDispatchRequest.Meta of type string")
        param = parent["ParameterizedJob"]
        if param["Payload"] == "required" and not payload:
            raise NomadError(500, "Payload is not provided but required by parameterized job")
        if param["Payload"] == "forbidden" and payload:
            raise NomadError(500, "Payload provided but forbidden by parameterized job")
        if len(payload) > DISPATCH_PAYLOAD_LIMIT:
            raise NomadError(500, f"Payload exceeds maximum size; {len(payload)} > {DISPATCH_PAYLOAD_LIMIT}")
        required = param.get("MetaRequired") or []
        allowed = set(required) | set(param.get("MetaOptional") or [])
        unpermitted = sorted(k for k in meta if k not in allowed)
        if unpermitted:
            raise NomadError(500, f"Dispatch request included unpermitted metadata keys: [{' '.join(unpermitted)}]")
        missing = sorted(k for k in required if k not in meta)
        if missing:
            raise NomadError(500, f"Dispatch did not provide required meta keys: [{' '.join(missing)}]")
        if token:
            for child in self.jobs.values():
                if (child["Namespace"] == namespace and child["ParentID"] == parent_id
                        and child.get("DispatchIdempotencyToken") == token):
                    return {"Index": child["ModifyIndex"], "JobCreateIndex": child["CreateIndex"],
                            "EvalCreateIndex": 0, "EvalID": "", "DispatchedJobID": child["ID"]}
        template = body.get("IdPrefixTemplate") or ""
        unix = self.clock.peek_ns() // NS
        middle = f"{template}-" if template else ""
        child = copy.deepcopy(parent)
        child["ID"] = f"{parent_id}/dispatch-{middle}{unix}-{self.ids.hex(8)}"
        child["Name"] = child["ID"]
        child["ParentID"] = parent_id
        child["Dispatched"] = True
        child["DispatchIdempotencyToken"] = token
        child["Status"] = "pending"
        child["StatusDescription"] = ""
        child["Version"] = 0
        child["Stable"] = False
        if meta:
            child["Meta"] = {**(child.get("Meta") or {}), **meta}
        child["Payload"] = base64.b64encode(snappy_encode(payload)).decode()
        child["SubmitTime"] = self.clock.now_ns()
        idx = self.bump("jobs", "job_summary")
        child["CreateIndex"] = child["ModifyIndex"] = child["JobModifyIndex"] = idx
        key = (namespace, child["ID"])
        self.jobs[key] = child
        self.summary_index[key] = (idx, idx)
        self.touch_summary(key)
        self.publish("Job", "JobRegistered", key[1], key[0], {"Job": copy.deepcopy(child)})
        ev = self.new_eval(child, "job-register")
        self.want_missing(key, ev["ID"])
        self.refresh_job(key)
        self.auto()
        return {"Index": ev["CreateIndex"], "JobCreateIndex": idx, "EvalCreateIndex": ev["CreateIndex"],
                "EvalID": ev["ID"], "DispatchedJobID": child["ID"]}

    def deregister(self, job_id: str, namespace: str, purge: bool) -> dict[str, Any]:
        """``DELETE /v1/job/<id>``: stop (and optionally purge) a job; a missing job is not an error."""
        key = (namespace, job_id)
        reply = {"EvalID": "", "EvalCreateIndex": 0, "JobModifyIndex": 0, "VolumeEvalID": "",
                 "VolumeEvalIndex": 0, "Index": 0, "LastContact": 0, "KnownLeader": False}
        job = self.jobs.get(key)
        if job is None:
            return reply
        idx = self.bump("jobs", "job_summary")
        job["Stop"] = True
        job["JobModifyIndex"] = job["ModifyIndex"] = idx
        job["Version"] += 1
        reply.update(JobModifyIndex=idx, Index=idx)
        self.stop_job_allocs(key)
        parameterized = job.get("ParameterizedJob") is not None and not job.get("Dispatched")
        if not parameterized and job.get("Periodic") is None:
            ev = self.new_eval(job, "job-deregister", status="complete")
            reply.update(EvalID=ev["ID"], EvalCreateIndex=ev["CreateIndex"], Index=ev["CreateIndex"])
        if purge:
            self.bump("jobs", "job_summary")
            del self.jobs[key]
            self.summary_index.pop(key, None)
            self.publish("Job", "JobDeregistered", job_id, namespace, {"Job": copy.deepcopy(job)})
            if job["ParentID"]:
                self.touch_summary((namespace, job["ParentID"]))
        else:
            self.publish("Job", "JobDeregistered", job_id, namespace, {"Job": copy.deepcopy(job)})
            self.refresh_job(key)
        return reply

    def stop_job_allocs(self, key: JobKey) -> None:
        """Cancel a job's pending placements and kill its live allocations."""
        for placement in [p for p in self.placements if (p.namespace, p.job_id) == key]:
            self.placements.remove(placement)
            ev = self.evals.get(placement.eval_id)
            if ev and ev["Status"] in ("pending", "blocked"):
                self.update_eval(ev, Status="cancelled", StatusDescription="job stopped")
        for alloc in self.job_allocs(*key):
            if not alloc.terminal():
                alloc.desired_status = "stop"
                alloc.desired_description = NOT_NEEDED_DESC
                self.kill(alloc, "")
        for ev in self.evals.values():
            if (ev["Namespace"], ev["JobID"]) == key and ev["Status"] in ("pending", "blocked"):
                self.update_eval(ev, Status="cancelled")

    # ------------------------------------------------------------------ scheduler

    def schedule(self, key: JobKey | None = None, force: bool = False, delayed_only: bool = False) -> list[str]:
        """Run the scheduler over pending placements (only those due, unless ``force`` for ``key``)."""
        placed: list[str] = []
        now = self.clock.peek_ns()
        for placement in list(self.placements):
            pkey = (placement.namespace, placement.job_id)
            if key is not None and pkey != key:
                continue
            if placement.not_before > now and not force:
                continue
            if delayed_only and not placement.not_before:
                continue
            alloc_id = self.place_one(placement)
            if alloc_id:
                placed.append(alloc_id)
        return placed

    def place_one(self, placement: Placement) -> str | None:
        """Place one allocation or mark the placement blocked (Queued in the job summary)."""
        key = (placement.namespace, placement.job_id)
        job = self.jobs.get(key)
        if job is None:
            self.placements.remove(placement)
            return None
        group = next(g for g in job["TaskGroups"] if g["Name"] == placement.group)
        avoid = placement.previous.node_id if placement.previous else ""
        node = self.pick_node(job, group, avoid)
        ev = self.evals.get(placement.eval_id)
        if node is None:
            if placement.blocked:
                return None
            self.bump("evals", "job_summary")
            placement.blocked = True
            if ev is not None:
                blocked = self.new_eval(job, "queued-allocs", status="blocked", previous=ev["ID"])
                self.update_eval(ev, Status="complete", BlockedEval=blocked["ID"], QueuedAllocations={group["Name"]: 1},
                                 FailedTGAllocs={group["Name"]: self.failed_metrics()})
                placement.eval_id = blocked["ID"]
            self.refresh_job(key)
            return None
        self.placements.remove(placement)
        idx = self.bump("allocs", "evals", "job_summary")
        now = self.clock.now_ns()
        alloc = Alloc(
            id=self.ids.uuid(), namespace=key[0], eval_id=placement.eval_id,
            name=f"{job['ID']}.{group['Name']}[{placement.index}]", node_id=node.id, node_name=node.name,
            job=copy.deepcopy(job), task_group=group["Name"], create_index=idx, create_time=now,
            modify_index=idx, alloc_modify_index=idx, modify_time=now,
        )
        prev = placement.previous
        if prev is not None:
            alloc.previous_allocation = prev.id
            prev.next_allocation = alloc.id
            if placement.reschedule_delay is not None:
                prev.desired_status = "stop"
                prev.desired_description = RESCHEDULED_DESC
                event = {"RescheduleTime": now, "PrevAllocID": prev.id, "PrevNodeID": prev.node_id,
                         "Delay": placement.reschedule_delay}
                alloc.reschedule_events = [*copy.deepcopy(prev.reschedule_events or []), event]
            prev.modify_index = prev.alloc_modify_index = idx
            prev.modify_time = now
            self.publish_alloc(prev, "PlanResult")
        self.allocs[alloc.id] = alloc
        self.publish_alloc(alloc, "PlanResult")
        if ev is not None and ev["Status"] in ("pending", "blocked"):
            self.update_eval(ev, Status="complete", QueuedAllocations={group["Name"]: 0}, SnapshotIndex=idx - 1)
        self.refresh_job(key)
        return alloc.id

    def failed_metrics(self) -> dict[str, Any]:
        """``AllocMetric`` for a failed placement."""
        return {"NodesEvaluated": len(self.nodes), "NodesFiltered": len(self.nodes), "NodesInPool": 0,
                "NodesAvailable": {}, "ClassFiltered": None, "ConstraintFiltered": None, "NodesExhausted": 0,
                "ClassExhausted": None, "DimensionExhausted": None, "QuotaExhausted": None,
                "ResourcesExhausted": None, "Scores": None, "ScoreMetaData": None, "AllocationTime": 1000,
                "CoalescedFailures": 0}

    def pick_node(self, job: dict[str, Any], group: dict[str, Any], avoid: str) -> Node | None:
        """The first feasible node (pool, datacenter, constraints, free resources), the previous node last."""
        need_cpu = sum(t["Resources"].get("CPU", 0) for t in group["Tasks"])
        need_mem = sum(t["Resources"].get("MemoryMB", 0) for t in group["Tasks"])
        need_gpu = sum(d.get("Count", 1) for t in group["Tasks"] for d in (t["Resources"].get("Devices") or [])
                       if "gpu" in d.get("Name", ""))
        constraints = list(job.get("Constraints") or []) + list(group.get("Constraints") or [])
        for task in group["Tasks"]:
            constraints += list(task.get("Constraints") or [])
        candidates = sorted(self.nodes.values(), key=lambda n: (n.id == avoid, n.create_index))
        for node in candidates:
            if node.status != "ready" or node.eligibility != "eligible":
                continue
            if job["NodePool"] != "all" and node.pool != job["NodePool"]:
                continue
            if not any(fnmatch.fnmatchcase(node.datacenter, dc) for dc in job["Datacenters"]):
                continue
            if not all(constraint_ok(node, c) for c in constraints):
                continue
            live = [a for a in self.allocs.values() if a.node_id == node.id and not a.client_terminal()]
            used_cpu = sum(t["Resources"].get("CPU", 0) for a in live for t in a.group()["Tasks"])
            used_mem = sum(t["Resources"].get("MemoryMB", 0) for a in live for t in a.group()["Tasks"])
            used_gpu = sum(d.get("Count", 1) for a in live for t in a.group()["Tasks"]
                           for d in (t["Resources"].get("Devices") or []) if "gpu" in d.get("Name", ""))
            if used_cpu + need_cpu > node.cpu or used_mem + need_mem > node.memory_mb:
                continue
            if used_gpu + need_gpu > node.gpus:
                continue
            return node
        return None

    def auto(self) -> None:
        """Auto modes: place what can be placed now and start what was placed."""
        if self.auto_place:
            self.schedule()
        if self.auto_start:
            for alloc in list(self.allocs.values()):
                if alloc.client_status == "pending" and alloc.desired_status == "run":
                    self.start(alloc)

    # ------------------------------------------------------------------ allocation updates

    def publish_alloc(self, alloc: Alloc, etype: str) -> None:
        """Emit an Allocation event (the payload omits the job, as Nomad does)."""
        self.publish("Allocation", etype, alloc.id, alloc.namespace, {"Allocation": alloc.wire(with_job=False)},
                     [alloc.job_id, ""])

    def client_update(self, alloc: Alloc, server: bool = False) -> None:
        """Commit an allocation change in one raft entry and refresh its job."""
        idx = self.bump("allocs", "job_summary")
        alloc.modify_index = idx
        if server:
            alloc.alloc_modify_index = idx
        alloc.modify_time = self.clock.now_ns()
        self.publish_alloc(alloc, "PlanResult" if server else "AllocationUpdated")
        self.refresh_job((alloc.namespace, alloc.job_id))
        self.check_drains()

    def receive(self, alloc: Alloc) -> None:
        """The client picked the allocation up: TaskStates appear with Received and Task Setup events."""
        if alloc.received:
            return
        alloc.received = True
        now = self.clock.now_ns()
        alloc.tasks = {}
        for task in alloc.group()["Tasks"]:
            run = TaskRun(task["Name"])
            run.events.append(task_event("Received", now, "Task received by client"))
            run.events.append(task_event("Task Setup", now, "Building Task Directory",
                                         {"message": "Building Task Directory"}, Message="Building Task Directory"))
            alloc.tasks[task["Name"]] = run

    def start(self, alloc: Alloc) -> None:
        """All tasks start running."""
        if alloc.client_terminal() or alloc.desired_status != "run":
            raise NomadError(409, f"allocation {alloc.id} is {alloc.client_status}/{alloc.desired_status}")
        self.receive(alloc)
        now = self.clock.now_ns()
        assert alloc.tasks is not None
        for run in alloc.tasks.values():
            if run.state == "pending":
                run.state = "running"
                run.started_at = now
                run.events.append(task_event("Started", now, "Task started by client"))
        alloc.client_status = "running"
        alloc.client_description = "Tasks are running"
        alloc.running_since = alloc.running_since or now
        self.client_update(alloc)

    def kill(self, alloc: Alloc, reason: str) -> None:
        """The client kills every task that is not dead yet (Killing, Killed) and the alloc ends."""
        now = self.clock.now_ns()
        self.receive(alloc)
        assert alloc.tasks is not None
        timeouts = {t["Name"]: t["KillTimeout"] for t in alloc.group()["Tasks"]}
        for name, run in alloc.tasks.items():
            if run.state == "dead":
                continue
            if run.state == "running":
                timeout = timeouts.get(name, 5 * NS)
                display = reason or f"Sent interrupt. Waiting {format_go_duration(timeout)} before force killing"
                run.events.append(task_event("Killing", now, display, {"kill_timeout": format_go_duration(timeout),
                                                                      **({"kill_reason": reason} if reason else {})},
                                             KillTimeout=timeout, KillReason=reason))
                run.events.append(task_event("Terminated", now, "Exit Code: 0, Signal: 15",
                                             {"exit_code": "0", "signal": "15", "oom_killed": "false",
                                              "exit_message": ""}, Signal=15))
                run.events.append(task_event("Killed", now, "Task successfully killed"))
            run.state = "dead"
            run.finished_at = now
        self.settle(alloc)
        self.client_update(alloc, server=True)

    def settle(self, alloc: Alloc) -> None:
        """Derive the client status once every task is dead."""
        if not alloc.tasks or any(r.state != "dead" for r in alloc.tasks.values()):
            return
        if alloc.client_status in ("lost", "unknown"):
            return
        if any(r.failed for r in alloc.tasks.values()):
            alloc.client_status, alloc.client_description = "failed", "Failed tasks"
        else:
            alloc.client_status, alloc.client_description = "complete", "All tasks have completed"

    def finish(self, alloc: Alloc, exit_code: int, oom: bool, signal: int, task: str | None,
               stdout: bytes, stderr: bytes, driver_error: str = "") -> None:
        """Tasks exit; failures restart in place or fail the allocation, which is then rescheduled per policy."""
        if alloc.client_terminal():
            raise NomadError(409, f"allocation {alloc.id} already {alloc.client_status}")
        self.receive(alloc)
        assert alloc.tasks is not None
        now = self.clock.now_ns()
        names = [task] if task else [n for n, r in alloc.tasks.items() if r.state != "dead"]
        for name in names:
            if name not in alloc.tasks:
                raise NomadError(404, f"unknown task {name!r}")
            run = alloc.tasks[name]
            run.logs["stdout"] += stdout
            run.logs["stderr"] += stderr
        restart = alloc.group()["RestartPolicy"]
        tasks = {t["Name"]: t for t in alloc.group()["Tasks"]}
        failed_names: list[str] = []
        leader_done = False
        for name in names:
            run = alloc.tasks[name]
            code = 137 if oom and exit_code == 0 else exit_code
            failed = bool(code or oom or signal or driver_error)
            if driver_error:
                run.events.append(task_event("Driver Failure", now, driver_error, {"driver_error": driver_error},
                                             DriverError=driver_error, FailsTask=True))
            else:
                message = "OOM Killed" if oom else ""
                display = f"Exit Code: {code}" + (f", Signal: {signal}" if signal else "")
                display += f', Exit Message: "{message}"' if message else ""
                run.events.append(task_event(
                    "Terminated", now, display,
                    {"exit_code": str(code), "signal": str(signal), "oom_killed": "true" if oom else "false",
                     "exit_message": message},
                    ExitCode=code, Signal=signal, Message=message))
            if not failed:
                run.state, run.finished_at = "dead", now
                leader_done = leader_done or tasks[name].get("Leader", False)
                continue
            if not driver_error and run.restarts < restart["Attempts"]:
                delay = restart["Delay"]
                run.events.append(task_event("Restarting", now, f"Task restarting in {format_go_duration(delay)}",
                                             {"restart_reason": "Restart within policy",
                                              "start_delay": str(delay)},
                                             RestartReason="Restart within policy", StartDelay=delay))
                run.restarts += 1
                run.last_restart = now
                run.events.append(task_event("Started", now, "Task started by client"))
                continue
            reason = (f"Exceeded allowed attempts {restart['Attempts']} in interval "
                      f"{format_go_duration(restart['Interval'])} and mode is \"{restart['Mode']}\"")
            if driver_error:
                reason = "Error was unrecoverable"
            run.events.append(task_event("Not Restarting", now, reason, {"fails_task": "true",
                                                                          "restart_reason": reason},
                                         RestartReason=reason, FailsTask=True))
            run.state, run.failed, run.finished_at = "dead", True, now
            failed_names.append(name)
        for name, run in alloc.tasks.items():
            if run.state == "dead" or name in names:
                continue
            if failed_names:
                run.events.append(task_event("Sibling Task Failed", now, f"Task's sibling {failed_names[0]!r} failed",
                                             {"failed_sibling": failed_names[0]}, FailedSibling=failed_names[0]))
            elif leader_done:
                run.events.append(task_event("Leader Task Dead", now, "Leader Task in Group dead"))
            else:
                continue
            timeout = tasks[name]["KillTimeout"]
            run.events.append(task_event("Killing", now, "Sent interrupt. Waiting "
                                         f"{format_go_duration(timeout)} before force killing", KillTimeout=timeout))
            run.events.append(task_event("Killed", now, "Task successfully killed"))
            run.state, run.finished_at = "dead", now
        self.settle(alloc)
        self.client_update(alloc)
        if alloc.client_status == "failed":
            self.reschedule(alloc)
        self.auto()

    def _running_tasks(self, alloc: Alloc, task: str) -> list[TaskRun]:
        if alloc.client_status != "running" or not alloc.tasks:
            raise NomadError(400, "Allocation is not running")
        if task and task not in alloc.tasks:
            raise NomadError(400, f"Failed to find task {task!r} in allocation")
        return [r for n, r in alloc.tasks.items() if (not task or n == task) and r.state == "running"]

    def signal(self, alloc: Alloc, signal: str, task: str) -> None:
        """``POST /v1/client/allocation/<id>/signal``: a ``Signaling`` task event."""
        now = self.clock.now_ns()
        for run in self._running_tasks(alloc, task):
            run.events.append(task_event("Signaling", now, f"Task being sent signal {signal}",
                                         {"signal": signal}, TaskSignal=signal))
        self.client_update(alloc)

    def restart(self, alloc: Alloc, task: str) -> None:
        """``POST /v1/client/allocation/<id>/restart``: tasks restart in place (Restarts + 1)."""
        now = self.clock.now_ns()
        for run in self._running_tasks(alloc, task):
            run.events.append(task_event("Restart Signaled", now, "User requested restart",
                                         {"restart_reason": "User requested restart"},
                                         RestartReason="User requested restart"))
            run.events.append(task_event("Started", now, "Task started by client"))
            run.restarts += 1
            run.last_restart = now
        self.client_update(alloc)

    def reschedule(self, alloc: Alloc) -> None:
        """Apply the group's ReschedulePolicy to a failed allocation."""
        key = (alloc.namespace, alloc.job_id)
        job = self.jobs.get(key)
        if job is None or job["Stop"]:
            return
        policy = alloc.group().get("ReschedulePolicy")
        now = self.clock.peek_ns()
        events = alloc.reschedule_events or []
        if not policy:
            return
        if policy["Unlimited"]:
            eligible = True
        else:
            interval = policy["Interval"]
            recent = [e for e in events if not interval or now - e["RescheduleTime"] < interval]
            eligible = policy["Attempts"] > 0 and len(recent) < policy["Attempts"]
        if not eligible:
            self.new_eval(job, "alloc-failure", status="complete")
            self.refresh_job(key)
            return
        delay = next_delay(policy, events)
        index = int(alloc.name.rsplit("[", 1)[1].rstrip("]"))
        if delay > 0:
            first = self.new_eval(job, "alloc-failure", status="complete")
            follow = self.new_eval(job, "failed-follow-up", wait_until=now + delay, previous=first["ID"])
            self.update_eval(first, NextEval=follow["ID"])
            alloc.followup_eval_id = follow["ID"]
            self.client_update(alloc, server=True)
            self.placements.append(Placement(key[0], key[1], alloc.task_group, index, follow["ID"], alloc, delay,
                                             now + delay))
        else:
            ev = self.new_eval(job, "alloc-failure")
            self.placements.append(Placement(key[0], key[1], alloc.task_group, index, ev["ID"], alloc, 0, now))
        self.refresh_job(key)

    def replace(self, alloc: Alloc, triggered_by: str, node_id: str = "") -> dict[str, Any] | None:
        """Queue a replacement for an allocation that was lost or migrated (never counts as a reschedule)."""
        key = (alloc.namespace, alloc.job_id)
        job = self.jobs.get(key)
        if job is None or job["Stop"]:
            return None
        ev = self.new_eval(job, triggered_by, node_id=node_id)
        index = int(alloc.name.rsplit("[", 1)[1].rstrip("]"))
        self.placements.append(Placement(key[0], key[1], alloc.task_group, index, ev["ID"], alloc))
        self.refresh_job(key)
        return ev

    def stop_alloc(self, alloc: Alloc) -> dict[str, Any]:
        """``POST /v1/allocation/<id>/stop``: migrate the allocation (stop it and place a replacement)."""
        job = self.jobs.get((alloc.namespace, alloc.job_id), alloc.job)
        if alloc.terminal():
            ev = self.new_eval(job, "alloc-stop", status="complete")
            return {"EvalID": ev["ID"], "Index": ev["CreateIndex"]}
        alloc.desired_transition["Migrate"] = True
        alloc.desired_status = "stop"
        alloc.desired_description = MIGRATE_DESC
        self.kill(alloc, "")
        ev = self.replace(alloc, "alloc-stop") or self.new_eval(job, "alloc-stop", status="complete")
        self.auto()
        return {"EvalID": ev["ID"], "Index": ev["CreateIndex"]}

    # ------------------------------------------------------------------ nodes

    def add_node(self, name: str, pool: str, node_class: str | None, datacenter: str, meta: dict[str, str] | None,
                 cpu: int, memory_mb: int, gpus: int, attributes: dict[str, str] | None) -> Node:
        """Register a ready, eligible client node."""
        idx = self.bump("nodes")
        now = self.clock.now_ns()
        node = Node(id=self.ids.uuid(), name=name, datacenter=datacenter, pool=pool, node_class=node_class or "",
                    static_meta=dict(meta or {}), create_index=idx, created_at=now, cpu=cpu, memory_mb=memory_mb,
                    gpus=gpus, attributes=dict(attributes or {}), modify_index=idx, status_updated_at=now // NS)
        node.events.append({"Message": "Node registered", "Subsystem": "Cluster", "Details": None,
                            "Timestamp": rfc3339(now), "CreateIndex": idx})
        self.nodes[node.id] = node
        self.publish("Node", "NodeRegistration", node.id, "", {"Node": node.wire()})
        self.unblock()
        return node

    def node_changed(self, node: Node, etype: str, message: str = "", subsystem: str = "Cluster") -> None:
        """Commit a node change."""
        idx = self.bump("nodes")
        node.modify_index = idx
        if message:
            node.events.append({"Message": message, "Subsystem": subsystem, "Details": None,
                                "Timestamp": rfc3339(self.clock.now_ns()), "CreateIndex": idx})
            del node.events[:-10]
        self.publish("Node", etype, node.id, "", {"Node": node.wire()})

    def unblock(self) -> None:
        """Capacity changed: blocked evaluations become schedulable again (placed now in auto mode)."""
        self.auto()

    def lose_node(self, node: Node, remove: bool) -> list[str]:
        """The node misses its heartbeats: live allocations become lost and are replaced."""
        node.status = "down"
        node.status_updated_at = self.clock.peek_ns() // NS
        self.node_changed(node, "NodeStatusUpdate" if not remove else "NodeDeregistration", "Node heartbeat missed")
        lost: list[str] = []
        for alloc in list(self.allocs.values()):
            if alloc.node_id != node.id or alloc.client_terminal():
                continue
            alloc.client_status = "lost"
            alloc.client_description = ""
            alloc.desired_status = "stop"
            alloc.desired_description = LOST_DESC
            self.client_update(alloc, server=True)
            self.replace(alloc, "node-update", node_id=node.id)
            lost.append(alloc.id)
        if remove:
            del self.nodes[node.id]
        self.auto()
        return lost

    def restore_node(self, node: Node) -> None:
        """The node heartbeats again."""
        node.status = "ready"
        node.status_updated_at = self.clock.peek_ns() // NS
        self.node_changed(node, "NodeStatusUpdate", "Node reregistered by heartbeat")
        self.unblock()

    def set_eligibility(self, node: Node, eligibility: str) -> dict[str, Any]:
        """``POST /v1/node/<id>/eligibility``."""
        if eligibility not in ("eligible", "ineligible"):
            raise NomadError(400, f'invalid scheduling eligibility "{eligibility}"')
        if eligibility == "eligible" and node.drain_strategy is not None:
            raise NomadError(400, "can not set node's scheduling eligibility to eligible while it is draining")
        node.eligibility = eligibility
        self.node_changed(node, "NodeEligibility", f"Node marked as {eligibility}")
        idx = node.modify_index
        if eligibility == "eligible":
            self.unblock()
        return {"EvalCreateIndex": 0, "EvalIDs": None, "Index": idx, "NodeModifyIndex": idx}

    def drain(self, node: Node, spec: dict[str, Any] | None, mark_eligible: bool,
              meta: dict[str, str] | None) -> dict[str, Any]:
        """``POST /v1/node/<id>/drain``: batch allocations are left to finish (Nomad >= 1.11)."""
        now = self.clock.now_ns()
        if spec is None:
            node.drain_strategy = None
            if node.last_drain:
                node.last_drain.update(Status="canceled", UpdatedAt=rfc3339(now))
            if mark_eligible:
                node.eligibility = "eligible"
            self.node_changed(node, "NodeDrain", "Node drain strategy cleared", "Drain")
            self.unblock()
        else:
            deadline = int(spec.get("Deadline") or 0)
            node.eligibility = "ineligible"
            node.drain_deadline_ns = now + deadline if deadline > 0 else 0
            node.drain_strategy = {
                "Deadline": deadline, "IgnoreSystemJobs": bool(spec.get("IgnoreSystemJobs", False)),
                "ForceDeadline": rfc3339(now + deadline) if deadline > 0 else rfc3339(0),
                "StartedAt": rfc3339(now),
            }
            node.last_drain = {"StartedAt": rfc3339(now), "UpdatedAt": rfc3339(now), "Status": "draining",
                               "AccessorID": "", "Meta": dict(meta or {})}
            self.node_changed(node, "NodeDrain", "Node drain strategy set", "Drain")
            for alloc in list(self.allocs.values()):
                if alloc.node_id == node.id and not alloc.terminal() and alloc.job["Type"] == "service":
                    self.stop_alloc(alloc)
            if deadline < 0:
                self.force_drain(node)
            self.check_drains()
        idx = node.modify_index
        return {"EvalCreateIndex": 0, "EvalIDs": None, "Index": idx, "NodeModifyIndex": idx}

    def force_drain(self, node: Node) -> None:
        """The drain deadline passed: remaining allocations are stopped; batch ones are not replaced."""
        for alloc in list(self.allocs.values()):
            if alloc.node_id != node.id or alloc.terminal():
                continue
            alloc.desired_transition["Migrate"] = True
            alloc.desired_status = "stop"
            alloc.desired_description = MIGRATE_DESC
            self.kill(alloc, "")
            if alloc.job["Type"] not in ("batch", "sysbatch"):
                self.replace(alloc, "node-drain", node_id=node.id)

    def check_drains(self) -> None:
        """Mark drains complete once no live allocation remains on the node."""
        for node in self.nodes.values():
            if node.drain_strategy is None:
                continue
            if any(a.node_id == node.id and not a.client_terminal() for a in self.allocs.values()):
                continue
            node.drain_strategy = None
            if node.last_drain:
                node.last_drain.update(Status="complete", UpdatedAt=rfc3339(self.clock.now_ns()))
            self.node_changed(node, "NodeDrain", "Node drain complete", "Drain")

    def metadata(self, node: Node) -> dict[str, Any]:
        """``GET /v1/client/metadata``."""
        return {"Meta": node.meta(), "Dynamic": dict(node.dynamic_meta), "Static": dict(node.static_meta)}

    def update_metadata(self, node: Node, meta: dict[str, str | None]) -> dict[str, Any]:
        """``POST /v1/client/metadata``: null values unset keys."""
        for key, value in meta.items():
            if value is not None and not isinstance(value, str):
                raise NomadError(400, f"meta value for {key!r} must be a string or null")
            node.dynamic_meta[key] = value
        self.node_changed(node, "NodeMetadata", "Node metadata updated")
        return self.metadata(node)

    # ------------------------------------------------------------------ time and GC

    def advance(self, seconds: float) -> None:
        """Time passes: max_run_duration kills, drain deadlines, due delayed reschedules."""
        self.clock.advance(seconds)
        now = self.clock.peek_ns()
        for alloc in list(self.allocs.values()):
            mrd = alloc.group().get("MaxRunDuration") if self.supports_max_run_duration else None
            if mrd and alloc.client_status == "running" and not alloc.terminal() and now - alloc.running_since >= mrd:
                alloc.desired_status = "stop"
                alloc.desired_description = MAX_RUN_DESC
                self.kill(alloc, MAX_RUN_DESC)
        for node in list(self.nodes.values()):
            if node.drain_strategy and node.drain_deadline_ns and now >= node.drain_deadline_ns:
                self.force_drain(node)
        self.check_drains()
        self.schedule(delayed_only=True)
        self.auto()

    def gc(self) -> list[str]:
        """Garbage-collect dead jobs (their allocations and evaluations go too); parents only without children."""
        removed: list[str] = []
        orphans = [a.id for a in self.allocs.values()
                   if (a.namespace, a.job_id) not in self.jobs and a.client_terminal()]
        for alloc_id in orphans:
            del self.allocs[alloc_id]
        for ev_id in [e["ID"] for e in self.evals.values() if (e["Namespace"], e["JobID"]) not in self.jobs]:
            del self.evals[ev_id]
        if orphans:
            self.bump("allocs", "evals")
        for key, job in list(self.jobs.items()):
            if job["Status"] != "dead":
                continue
            if any(c["ParentID"] == key[1] and c["Namespace"] == key[0] for c in self.jobs.values()):
                continue
            removed.append(key[1])
        if not removed:
            return removed
        self.bump("jobs", "job_summary", "allocs", "evals")
        for job_id in removed:
            for key in [k for k in self.jobs if k[1] == job_id]:
                job = self.jobs.pop(key)
                self.summary_index.pop(key, None)
                self.publish("Job", "JobDeregistered", key[1], key[0], {"Job": copy.deepcopy(job)})
                if job["ParentID"]:
                    self.touch_summary((key[0], job["ParentID"]))
                for alloc in self.job_allocs(*key):
                    del self.allocs[alloc.id]
                for ev_id in [e["ID"] for e in self.evals.values() if (e["Namespace"], e["JobID"]) == key]:
                    del self.evals[ev_id]
        return removed


def same_spec(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether a re-registered job changes nothing but server-managed fields (then Version stays)."""
    managed = {"CreateIndex", "ModifyIndex", "JobModifyIndex", "Version", "SubmitTime", "Status",
               "StatusDescription", "Stable"}
    return {k: v for k, v in old.items() if k not in managed} == {k: v for k, v in new.items() if k not in managed}


def next_delay(policy: dict[str, Any], events: list[dict[str, Any]]) -> int:
    """Nomad's reschedule delay: constant, exponential (doubling) or fibonacci, capped at MaxDelay."""
    base = policy["Delay"]
    func = policy["DelayFunction"]
    if func == "exponential" and events:
        delay = events[-1]["Delay"] * 2
    elif func == "fibonacci" and len(events) >= 2:
        delay = events[-1]["Delay"] + events[-2]["Delay"]
    else:
        delay = base
    if policy.get("MaxDelay") and delay > policy["MaxDelay"]:
        delay = policy["MaxDelay"]
    return int(delay)


def _target(node: Node, text: str) -> str | None:
    match = re.fullmatch(r"\$\{(.+)\}", text or "")
    if not match:
        return text
    ref = match.group(1)
    simple = {"node.class": node.node_class, "node.datacenter": node.datacenter, "node.pool": node.pool,
              "node.unique.name": node.name, "node.unique.id": node.id}
    if ref in simple:
        return simple[ref]
    if ref.startswith("meta."):
        return node.meta().get(ref[5:])
    if ref.startswith("attr."):
        return node.all_attributes().get(ref[5:])
    return None


def constraint_ok(node: Node, constraint: dict[str, Any]) -> bool:
    """Evaluate one constraint against a node (the operands a Task API job uses)."""
    operand = constraint.get("Operand") or "="
    left = _target(node, constraint.get("LTarget", ""))
    right = _target(node, constraint.get("RTarget", ""))
    if operand in ("=", "==", "is"):
        return left is not None and left == right
    if operand in ("!=", "not"):
        return left != right
    if operand == "is_set":
        return left is not None
    if operand == "is_not_set":
        return left is None
    if operand == "regexp":
        return left is not None and re.search(right or "", left) is not None
    if operand in ("set_contains", "set_contains_all"):
        have = {s.strip() for s in (left or "").split(",")}
        return all(s.strip() in have for s in (right or "").split(","))
    if operand == "set_contains_any":
        have = {s.strip() for s in (left or "").split(",")}
        return any(s.strip() in have for s in (right or "").split(","))
    return True
