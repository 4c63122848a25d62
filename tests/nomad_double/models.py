"""In-memory records of the Nomad double (nodes, allocations, task states) and their JSON wire format."""

from __future__ import annotations

import copy
import zlib
from dataclasses import dataclass, field
from typing import Any

from .util import rfc3339

TERMINAL_CLIENT = ("complete", "failed", "lost")
MAX_TASK_EVENTS = 10

_EVENT_ZERO: dict[str, Any] = {
    "Type": "", "Time": 0, "DisplayMessage": "", "Details": {}, "Message": "", "FailsTask": False,
    "RestartReason": "", "SetupError": "", "DriverError": "", "DriverMessage": "", "ExitCode": 0, "Signal": 0,
    "KillTimeout": 0, "KillError": "", "KillReason": "", "StartDelay": 0, "DownloadError": "",
    "ValidationError": "", "DiskLimit": 0, "FailedSibling": "", "VaultError": "", "TaskSignalReason": "",
    "TaskSignal": "", "GenericSource": "",
}


def task_event(etype: str, time_ns: int, display: str = "", details: dict[str, str] | None = None,
               **fields: Any) -> dict[str, Any]:
    """A TaskEvent with every field Nomad serializes (zero values where unset)."""
    event = copy.deepcopy(_EVENT_ZERO)
    event.update(fields)
    event["Type"] = etype
    event["Time"] = time_ns
    event["DisplayMessage"] = display
    event["Details"] = details or {}
    return event


@dataclass
class TaskRun:
    """One task's state inside an allocation."""

    name: str
    state: str = "pending"
    failed: bool = False
    restarts: int = 0
    started_at: int = 0
    finished_at: int = 0
    last_restart: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    logs: dict[str, bytearray] = field(default_factory=lambda: {"stdout": bytearray(), "stderr": bytearray()})

    def wire(self) -> dict[str, Any]:
        """The ``TaskState`` JSON."""
        return {
            "State": self.state, "Failed": self.failed, "Restarts": self.restarts,
            "LastRestart": rfc3339(self.last_restart), "StartedAt": rfc3339(self.started_at),
            "FinishedAt": rfc3339(self.finished_at), "Events": copy.deepcopy(self.events[-MAX_TASK_EVENTS:]),
            "TaskHandle": None,
        }


@dataclass
class Alloc:
    """An allocation: one placement of one task group of one job on one node."""

    id: str
    namespace: str
    eval_id: str
    name: str
    node_id: str
    node_name: str
    job: dict[str, Any]
    task_group: str
    create_index: int
    create_time: int
    previous_allocation: str = ""
    next_allocation: str = ""
    followup_eval_id: str = ""
    desired_status: str = "run"
    desired_description: str = ""
    client_status: str = "pending"
    client_description: str = ""
    desired_transition: dict[str, Any] = field(
        default_factory=lambda: {"Migrate": None, "Reschedule": None, "ForceReschedule": None,
                                 "NoShutdownDelay": None})
    reschedule_events: list[dict[str, Any]] | None = None
    tasks: dict[str, TaskRun] | None = None
    modify_index: int = 0
    alloc_modify_index: int = 0
    modify_time: int = 0
    running_since: int = 0
    received: bool = False

    @property
    def job_id(self) -> str:
        """The ID of the allocation's job."""
        return str(self.job["ID"])

    def terminal(self) -> bool:
        """Nomad's ``TerminalStatus``: desired stop/evict or a terminal client status."""
        return self.desired_status in ("stop", "evict") or self.client_status in TERMINAL_CLIENT

    def client_terminal(self) -> bool:
        """Whether the client has finished with the allocation."""
        return self.client_status in TERMINAL_CLIENT

    def group(self) -> dict[str, Any]:
        """The task group definition this allocation runs."""
        return next(g for g in self.job["TaskGroups"] if g["Name"] == self.task_group)

    def _resources(self) -> dict[str, Any]:
        tasks = self.group()["Tasks"]
        return {
            "CPU": sum(t["Resources"].get("CPU", 0) for t in tasks),
            "MemoryMB": sum(t["Resources"].get("MemoryMB", 0) for t in tasks),
            "DiskMB": self.group()["EphemeralDisk"].get("SizeMB", 300), "Networks": None,
        }

    def _tracker(self) -> dict[str, Any] | None:
        if not self.reschedule_events:
            return None
        return {"Events": copy.deepcopy(self.reschedule_events), "LastReschedule": "ok"}

    def _task_states(self) -> dict[str, Any] | None:
        if self.tasks is None:
            return None
        return {name: run.wire() for name, run in self.tasks.items()}

    def stub(self) -> dict[str, Any]:
        """The ``AllocListStub`` JSON used by list endpoints."""
        return {
            "ID": self.id, "EvalID": self.eval_id, "Name": self.name, "Namespace": self.namespace,
            "NodeID": self.node_id, "NodeName": self.node_name, "JobID": self.job_id, "JobType": self.job["Type"],
            "JobVersion": self.job.get("Version", 0), "TaskGroup": self.task_group, "AllocatedResources": None,
            "DesiredStatus": self.desired_status, "DesiredDescription": self.desired_description,
            "ClientStatus": self.client_status, "ClientDescription": self.client_description,
            "DesiredTransition": dict(self.desired_transition), "TaskStates": self._task_states(),
            "DeploymentStatus": None, "FollowupEvalID": self.followup_eval_id,
            "PreviousAllocation": self.previous_allocation, "NextAllocation": self.next_allocation,
            "RescheduleTracker": self._tracker(), "PreemptedAllocations": None, "PreemptedByAllocation": "",
            "CreateIndex": self.create_index, "ModifyIndex": self.modify_index, "CreateTime": self.create_time,
            "ModifyTime": self.modify_time,
        }

    def wire(self, with_job: bool = True) -> dict[str, Any]:
        """The full ``Allocation`` JSON."""
        resources = self._resources()
        task_resources = {
            t["Name"]: {"CPU": t["Resources"].get("CPU", 0), "MemoryMB": t["Resources"].get("MemoryMB", 0),
                        "DiskMB": 0, "Networks": None}
            for t in self.group()["Tasks"]
        }
        out = self.stub()
        for key in ("NodeName", "JobType", "JobVersion"):
            out.pop(key)
        out.update({
            "NodeName": self.node_name, "Job": copy.deepcopy(self.job) if with_job else None,
            "Resources": resources,
            "SharedResources": {"CPU": 0, "MemoryMB": 0, "DiskMB": resources["DiskMB"], "Networks": None},
            "TaskResources": task_resources, "DeploymentID": "",
            "Metrics": {
                "NodesEvaluated": 1, "NodesFiltered": 0, "NodesInPool": 1, "NodesAvailable": {}, "ClassFiltered": None,
                "ConstraintFiltered": None, "NodesExhausted": 0, "ClassExhausted": None, "DimensionExhausted": None,
                "QuotaExhausted": None, "ResourcesExhausted": None, "Scores": None, "ScoreMetaData": None,
                "AllocationTime": 1000, "CoalescedFailures": 0,
            },
            "AllocModifyIndex": self.alloc_modify_index, "AllocStates": None, "NetworkStatus": None,
        })
        return out


@dataclass
class Node:
    """A client node."""

    id: str
    name: str
    datacenter: str
    pool: str
    node_class: str
    static_meta: dict[str, str]
    create_index: int
    created_at: int
    cpu: int = 4000
    memory_mb: int = 16384
    gpus: int = 0
    attributes: dict[str, str] = field(default_factory=dict)
    dynamic_meta: dict[str, str | None] = field(default_factory=dict)
    status: str = "ready"
    eligibility: str = "eligible"
    drain_strategy: dict[str, Any] | None = None
    drain_deadline_ns: int = 0
    last_drain: dict[str, Any] | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    modify_index: int = 0
    status_updated_at: int = 0

    def meta(self) -> dict[str, str]:
        """Static meta overlaid with dynamic meta (null values unset keys)."""
        merged = dict(self.static_meta)
        for key, value in self.dynamic_meta.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        return merged

    def all_attributes(self) -> dict[str, str]:
        """Fingerprinted attributes."""
        attrs = {
            "kernel.name": "linux", "os.name": "ubuntu", "os.version": "24.04", "cpu.arch": "amd64",
            "cpu.numcores": str(max(1, self.cpu // 1000)), "cpu.totalcompute": str(self.cpu),
            "memory.totalbytes": str(self.memory_mb * 1024 * 1024), "driver.docker": "1",
            "unique.hostname": self.name, "unique.network.ip-address": "127.0.0.1", "nomad.version": "",
        }
        attrs.update(self.attributes)
        return attrs

    def _drivers(self) -> dict[str, Any]:
        when = rfc3339(self.created_at)
        return {name: {"Attributes": {f"driver.{name}": "true"}, "Detected": True, "Healthy": True,
                       "HealthDescription": "Healthy", "UpdateTime": when} for name in ("docker", "raw_exec")}

    def stub(self, version: str, with_os: bool = False) -> dict[str, Any]:
        """The ``NodeListStub`` JSON."""
        out = {
            "Address": "127.0.0.1", "ID": self.id, "Datacenter": self.datacenter, "Name": self.name,
            "NodeClass": self.node_class, "NodePool": self.pool, "Version": version, "Drain": self.drain_strategy
            is not None, "SchedulingEligibility": self.eligibility, "Status": self.status,
            "StatusDescription": "", "Drivers": self._drivers(), "NodeResources": None, "ReservedResources": None,
            "LastDrain": copy.deepcopy(self.last_drain), "CreateIndex": self.create_index,
            "ModifyIndex": self.modify_index,
        }
        if with_os:
            out["Attributes"] = {"os.name": "ubuntu", "os.version": "24.04"}
        return out

    def wire(self) -> dict[str, Any]:
        """The full ``Node`` JSON."""
        devices = None
        if self.gpus:
            devices = [{"Vendor": "nvidia", "Type": "gpu", "Name": "Tesla T4", "Attributes": {},
                        "Instances": [{"ID": f"GPU-{self.id[:8]}-{i}", "Healthy": True, "HealthDescription": "",
                                       "Locality": None} for i in range(self.gpus)]}]
        return {
            "ID": self.id, "SecretID": "", "Datacenter": self.datacenter, "Name": self.name,
            "HTTPAddr": "127.0.0.1:4646", "TLSEnabled": False, "Attributes": self.all_attributes(),
            "NodeResources": {"Cpu": {"CpuShares": self.cpu}, "Memory": {"MemoryMB": self.memory_mb},
                              "Disk": {"DiskMB": 100000}, "Networks": None, "NodeNetworks": None,
                              "Devices": devices},
            "ReservedResources": {"Cpu": {"CpuShares": 0}, "Memory": {"MemoryMB": 0}, "Disk": {"DiskMB": 0},
                                  "Networks": {"ReservedHostPorts": ""}},
            "Links": {}, "Meta": self.meta(), "NodeClass": self.node_class, "NodePool": self.pool,
            "ComputedClass": f"v1:{zlib.crc32(f'{self.node_class}|{self.pool}|{self.datacenter}'.encode())}",
            "Drain": self.drain_strategy is not None, "DrainStrategy": copy.deepcopy(self.drain_strategy),
            "SchedulingEligibility": self.eligibility, "Status": self.status, "StatusDescription": "",
            "StatusUpdatedAt": self.status_updated_at, "Events": copy.deepcopy(self.events),
            "Drivers": self._drivers(), "HostVolumes": None, "HostNetworks": None,
            "LastDrain": copy.deepcopy(self.last_drain), "CSIControllerPlugins": None, "CSINodePlugins": None,
            "CreateIndex": self.create_index, "ModifyIndex": self.modify_index,
        }
