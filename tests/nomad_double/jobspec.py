"""Job canonicalization and validation, following Nomad's defaults for the fields the gateway uses."""

from __future__ import annotations

import copy
from typing import Any

from .util import NS, duration_ns

HOUR = 3600 * NS
MINUTE = 60 * NS

RESTART_DEFAULTS = {
    "batch": {"Attempts": 3, "Interval": 24 * HOUR, "Delay": 15 * NS, "Mode": "fail", "RenderTemplates": False},
    "service": {"Attempts": 2, "Interval": 30 * MINUTE, "Delay": 15 * NS, "Mode": "fail", "RenderTemplates": False},
}
RESCHEDULE_DEFAULTS = {
    "batch": {"Attempts": 1, "Interval": 24 * HOUR, "Delay": 5 * NS, "DelayFunction": "constant", "MaxDelay": 0,
              "Unlimited": False},
    "service": {"Attempts": 0, "Interval": 0, "Delay": 30 * NS, "DelayFunction": "exponential", "MaxDelay": HOUR,
                "Unlimited": True},
}
JOB_TYPES = ("service", "batch", "system", "sysbatch")
DELAY_FUNCTIONS = ("constant", "exponential", "fibonacci")
PAYLOAD_MODES = ("optional", "required", "forbidden")


class JobValidationError(ValueError):
    """A job that Nomad would refuse at registration (HTTP 400 / 500 with the message)."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__(format_multierror(errors))


def format_multierror(errors: list[str]) -> str:
    """The hashicorp/go-multierror text Nomad returns for validation failures."""
    noun = "error" if len(errors) == 1 else "errors"
    lines = "".join(f"\t* {err}\n" for err in errors)
    return f"{len(errors)} {noun} occurred:\n{lines}\n"


def _dur_fields(obj: dict[str, Any] | None, names: tuple[str, ...]) -> None:
    if not obj:
        return
    for name in names:
        if name in obj and obj[name] is not None:
            obj[name] = duration_ns(obj[name])


def canonicalize(job_in: dict[str, Any], supports_max_run_duration: bool, validate: bool = True) -> dict[str, Any]:
    """Fill Nomad's defaults into a job (the API ``Canonicalize`` plus server-side defaults) and validate it."""
    job = copy.deepcopy(job_in)
    errors: list[str] = []
    if not job.get("ID"):
        errors.append("Missing job ID")
    elif " " in job["ID"]:
        errors.append("Job ID contains a space")
    elif "\x00" in job["ID"]:
        errors.append("Job ID contains a null character")
    jtype = job.get("Type") or "service"
    if jtype not in JOB_TYPES:
        errors.append(f'Invalid job type: "{jtype}"')
        jtype = "service"
    kind = "batch" if jtype in ("batch", "sysbatch") else "service"
    job.setdefault("Region", "global")
    job["Region"] = job["Region"] or "global"
    job["Namespace"] = job.get("Namespace") or "default"
    job["Name"] = job.get("Name") or job.get("ID", "")
    job["Type"] = jtype
    job["Priority"] = 50 if job.get("Priority") in (None, 0) else job["Priority"]
    if not 1 <= int(job["Priority"]) <= 100:
        errors.append("Job priority must be between [1, 100]")
    job["NodePool"] = job.get("NodePool") or "default"
    if not job.get("Datacenters"):
        job["Datacenters"] = ["*"]
    defaults: dict[str, Any] = {
        "ParentID": "", "AllAtOnce": False, "Constraints": None, "Affinities": None, "Spreads": None,
        "Update": None, "Multiregion": None, "Periodic": None, "ParameterizedJob": None, "Dispatched": False,
        "DispatchIdempotencyToken": "", "Payload": None, "Meta": None, "ConsulToken": "", "VaultToken": "",
        "Migrate": None, "Reschedule": None, "Stop": False, "Stable": False, "Version": 0, "Status": "",
        "StatusDescription": "", "SubmitTime": None, "CreateIndex": 0, "ModifyIndex": 0, "JobModifyIndex": 0,
    }
    for key, value in defaults.items():
        if key not in job or (job[key] is None and value is not None):
            job[key] = value
    param = job.get("ParameterizedJob")
    if param is not None:
        if jtype not in ("batch", "sysbatch"):
            errors.append('Parameterized job can only be used with "batch" or "sysbatch" scheduler')
        param["Payload"] = param.get("Payload") or "optional"
        if param["Payload"] not in PAYLOAD_MODES:
            errors.append(f'Unknown payload requirement: "{param["Payload"]}"')
        param["MetaRequired"] = param.get("MetaRequired") or None
        param["MetaOptional"] = param.get("MetaOptional") or None
        overlap = set(param["MetaRequired"] or []) & set(param["MetaOptional"] or [])
        for key in sorted(overlap):
            errors.append(f'Meta key "{key}" can\'t be both required and optional')
    groups = job.get("TaskGroups") or []
    if not groups:
        errors.append("Missing job task groups")
    seen_groups: set[str] = set()
    for gidx, group in enumerate(groups):
        errors.extend(_canonicalize_group(group, gidx, kind, jtype, seen_groups, supports_max_run_duration))
    job["TaskGroups"] = groups or None
    if errors and validate:
        raise JobValidationError(errors)
    return job


def _canonicalize_group(group: dict[str, Any], gidx: int, kind: str, jtype: str, seen: set[str],
                        supports_mrd: bool) -> list[str]:
    errors: list[str] = []
    name = group.get("Name") or ""
    if not name:
        errors.append(f"Task group {gidx + 1} missing name")
    elif name in seen:
        errors.append(f"Job task group {gidx + 1} redefines '{name}' from group {len(seen)}")
    seen.add(name)
    group["Count"] = 1 if group.get("Count") is None else int(group["Count"])
    if group["Count"] < 0:
        errors.append(f"Task group {name} count can't be negative")
    restart = dict(RESTART_DEFAULTS[kind])
    restart.update({k: v for k, v in (group.get("RestartPolicy") or {}).items() if v is not None})
    _dur_fields(restart, ("Interval", "Delay"))
    group["RestartPolicy"] = restart
    if jtype in ("system", "sysbatch"):
        group["ReschedulePolicy"] = None
    else:
        resched = dict(RESCHEDULE_DEFAULTS[kind])
        resched.update({k: v for k, v in (group.get("ReschedulePolicy") or {}).items() if v is not None})
        _dur_fields(resched, ("Interval", "Delay", "MaxDelay"))
        if resched["DelayFunction"] not in DELAY_FUNCTIONS:
            errors.append(f"Task group {name} has invalid reschedule policy: Invalid delay function "
                          f"{resched['DelayFunction']!r}, must be one of {list(DELAY_FUNCTIONS)}")
        group["ReschedulePolicy"] = resched
    if "MaxRunDuration" in group:
        if not supports_mrd:
            # Older servers do not know the field: Go's JSON decoder drops it silently.
            group.pop("MaxRunDuration")
        elif group["MaxRunDuration"] is not None:
            group["MaxRunDuration"] = duration_ns(group["MaxRunDuration"])
            if jtype != "batch":
                errors.append(f"Task group {name}: max_run_duration is only supported for batch jobs")
    for key, value in (("Constraints", None), ("Affinities", None), ("Spreads", None), ("Meta", None),
                       ("Networks", None), ("Services", None), ("Volumes", None), ("Update", None),
                       ("Migrate", None), ("Scaling", None), ("StopAfterClientDisconnect", None)):
        group.setdefault(key, value)
    group["EphemeralDisk"] = group.get("EphemeralDisk") or {"Sticky": False, "SizeMB": 300, "Migrate": False}
    tasks = group.get("Tasks") or []
    if not tasks:
        errors.append(f"Task group {name} has no tasks" if name else "Missing tasks for task group")
    task_names: set[str] = set()
    leaders = 0
    for tidx, task in enumerate(tasks):
        tname = task.get("Name") or ""
        if not tname:
            errors.append(f"Task group {name}: Task {tidx + 1} missing name")
        elif tname in task_names:
            errors.append(f"Task group {name}: Task {tidx + 1} redefines '{tname}'")
        task_names.add(tname)
        if not task.get("Driver"):
            errors.append(f"Task group {name}: Task {tname}: Missing task driver")
        leaders += bool(task.get("Leader"))
        _canonicalize_task(task)
    if leaders > 1:
        errors.append(f"Task group {name}: Only one task may be marked as leader")
    group["Tasks"] = tasks or None
    return errors


def _canonicalize_task(task: dict[str, Any]) -> None:
    task["Leader"] = bool(task.get("Leader", False))
    task["KillTimeout"] = duration_ns(task.get("KillTimeout")) if task.get("KillTimeout") is not None else 5 * NS
    task["ShutdownDelay"] = duration_ns(task.get("ShutdownDelay") or 0)
    for key, value in (("User", ""), ("Config", None), ("Env", None), ("Services", None), ("Vault", None),
                       ("Templates", None), ("Constraints", None), ("Affinities", None), ("DispatchPayload", None),
                       ("Meta", None), ("Artifacts", None), ("Lifecycle", None), ("KillSignal", "")):
        task.setdefault(key, value)
    resources = task.get("Resources") or {}
    resources.setdefault("CPU", 100)
    resources.setdefault("MemoryMB", 300)
    resources.setdefault("MemoryMaxMB", 0)
    resources.setdefault("DiskMB", 0)
    resources.setdefault("Networks", None)
    resources.setdefault("Devices", None)
    task["Resources"] = resources
    log = task.get("LogConfig") or {}
    log.setdefault("MaxFiles", 10)
    log.setdefault("MaxFileSizeMB", 10)
    log.setdefault("Disabled", False)
    task["LogConfig"] = log


def stub(job: dict[str, Any], summary: dict[str, Any], with_meta: bool) -> dict[str, Any]:
    """The ``JobListStub`` that ``GET /v1/jobs`` returns for a job."""
    out = {
        "ID": job["ID"], "ParentID": job["ParentID"], "Name": job["Name"], "Namespace": job["Namespace"],
        "Datacenters": job["Datacenters"], "Multiregion": job.get("Multiregion"), "Type": job["Type"],
        "Priority": job["Priority"], "NodePool": job["NodePool"], "Periodic": job.get("Periodic") is not None,
        "ParameterizedJob": job.get("ParameterizedJob") is not None and not job.get("Dispatched"),
        "Stop": job["Stop"], "Status": job["Status"], "StatusDescription": job["StatusDescription"],
        "JobSummary": summary, "CreateIndex": job["CreateIndex"], "ModifyIndex": job["ModifyIndex"],
        "JobModifyIndex": job["JobModifyIndex"], "SubmitTime": job["SubmitTime"],
    }
    if with_meta:
        out["Meta"] = job.get("Meta")
    return out
