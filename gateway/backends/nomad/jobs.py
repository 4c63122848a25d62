"""Task API spec → Nomad parameterized batch job, and the names and dispatch bodies around it.

Everything is built as Python data (never by string templating). Mapping decisions:

- one task group ``task``; one Nomad task per container, the first is the ``Leader``;
- driver: ``docker`` or ``podman`` (a spec naming none gets ``TASKAPI_DRIVER``, else docker, the cluster
  default); ``process`` would be Nomad's ``raw_exec``, which clusters disable by default, so it is refused (422)
  on this backend;
- CPU: 1 MHz per millicore (``1`` core = ``1000`` MHz, Nomad's own convention for ``cpu``), at least 1;
  memory: ``MemoryMB`` = the limit rounded up to MiB (no limit given: Nomad's default, 300 MB);
  GPUs: ``nvidia/gpu`` devices;
- ``node_groups`` (pools of ``gateway/pools.py``; default the task pool, or the GPU pool for GPU specs): one →
  its ``NodePool``; several → pool ``all`` and a ``${node.class}`` regexp constraint;
- ``RestartPolicy`` attempts 0 (a failure surfaces as a new allocation, i.e. a new attempt);
  ``ReschedulePolicy`` from ``retry`` with an ``Interval`` long enough to cover a task's whole life (delays
  under 5 s become 5 s, Nomad's minimum);
- ``MaxRunDuration`` = the API's timeout: sent always; servers older than 2.0.3 drop the field silently and
  the reconciler's deadline is the only limit there. A task may therefore not ask for a longer timeout than
  its API's (:func:`check_timeout`);
- the task record is the dispatch payload, written to ``local/job.json`` (``$TASKAPI_JOB_FILE``) and bind-mounted
  read-only at ``/cortex/spec/job.json``;
- env: ``TASKAPI_JOB_ID`` (``${NOMAD_META_task_id}``), ``TASKAPI_API_NAME``, ``TASKAPI_JOB_FILE``. Nomad has no
  variable that counts reschedules, so ``TASKAPI_ATTEMPT`` cannot be exact and is not set: attempts are numbered
  by the gateway from the order of the allocations; a task can tell its attempts apart by ``NOMAD_ALLOC_ID``.
"""

from __future__ import annotations

import base64
import json
import math
import secrets
import time
from typing import Any

from gateway.backends.base import PayloadTooLarge, Unprocessable
from gateway.models import TaskRecord
from gateway.pools import Pool, load_catalog
from gateway.spec import Container, Retry, TaskAPISpec

NS = 1_000_000_000
JOB_PREFIX = "taskapi-"
GROUP = "task"
PAYLOAD_FILE = "job.json"
CONTAINER_JOB_FILE = "/cortex/spec/job.json"
PAYLOAD_LIMIT = 16384  # bytes after base64 decoding (Nomad's DispatchPayloadSizeLimit)
MAX_TIMEOUT = 30 * 24 * 3600  # the contract's largest task timeout, seconds
MIB = 1024 * 1024
MIN_RESCHEDULE_DELAY = 5.0  # seconds: Nomad refuses a shorter reschedule delay

# Meta keys. On the parent (and copied into every child): the API. Given at dispatch: the task.
META_API = "taskapi_api"
META_SPEC = "taskapi_spec"
META_CREATED = "taskapi_created_at"
META_UPDATED = "taskapi_updated_at"
META_TASK_ID = "task_id"
META_SUBMITTED = "submitted_at"
META_TIMEOUT = "timeout"
META_CONFIG = "config"
META_REQUEST_HASH = "request_hash"
META_REQUIRED = [META_TASK_ID, META_SUBMITTED, META_TIMEOUT]
META_OPTIONAL = [META_CONFIG, META_REQUEST_HASH]

# Task IDs sort newest first: 11 hex digits of (16**11 - 1 - milliseconds since 1970), then 5 random ones.
# Nomad lists jobs in ID order, so a page of ``taskapi-<name>/dispatch-`` is a page of the newest tasks.
_TIME_DIGITS = 11
_TIME_MAX = 16**_TIME_DIGITS - 1


def parent_id(api_name: str) -> str:
    """The parameterized job of a Task API."""
    return f"{JOB_PREFIX}{api_name}"


def children_prefix(api_name: str) -> str:
    """The ID prefix shared by every task (dispatched child job) of an API."""
    return f"{parent_id(api_name)}/dispatch-"


def child_prefix(api_name: str, task_id: str) -> str:
    """The ID prefix of one task's child job (``<parent>/dispatch-<task id>-<unix>-<8 hex>``)."""
    return f"{children_prefix(api_name)}{task_id}-"


def new_task_id(now: float | None = None) -> str:
    """16 hex digits that sort newest first (see ``_TIME_DIGITS``)."""
    millis = int((time.time() if now is None else now) * 1000)
    return f"{_TIME_MAX - millis:0{_TIME_DIGITS}x}{secrets.randbits(20):05x}"


def driver_of(spec: TaskAPISpec, default: str | None = None) -> str:
    """The Nomad task driver for a spec (else ``default``, else docker), or Unprocessable with the reason."""
    driver = spec.driver or default or "docker"
    if driver == "process":
        raise Unprocessable(
            "driver 'process' is not available on the Nomad backend: it would be Nomad's raw_exec driver, "
            "which runs commands unisolated on the nodes and is disabled by default; use docker or podman"
        )
    for i, container in enumerate(spec.pod.containers):
        if not container.image:
            raise Unprocessable(f"pod.containers[{i}].image is required with driver {driver!r}")
    return driver


def cpu_mhz(millicores: int) -> int:
    """Nomad CPU (MHz) for a Kubernetes CPU quantity: 1 MHz per millicore, at least 1."""
    return max(1, millicores)


def memory_mb(memory_bytes: int) -> int:
    """Nomad ``MemoryMB`` for a limit in bytes, rounded up to whole MiB."""
    return max(1, math.ceil(memory_bytes / MIB))


def effective_retry(spec: TaskAPISpec) -> Retry:
    """``retry`` as Nomad applies it: delays of at least 5 s (its minimum), a ceiling no lower than the delay."""
    retry = spec.retry
    delay = max(retry.delay_seconds, MIN_RESCHEDULE_DELAY)
    max_delay = max(retry.max_delay_seconds, delay)
    return retry.model_copy(update={"delay": f"{delay:g}s", "max_delay": f"{max_delay:g}s"})


def _reschedule_policy(spec: TaskAPISpec) -> dict[str, Any]:
    retry = effective_retry(spec)
    delay = round(retry.delay_seconds * NS)
    max_delay = round(retry.max_delay_seconds * NS)
    # Attempts are counted within Interval: make it outlast any task (its longest timeout plus every delay).
    interval = (MAX_TIMEOUT + retry.attempts * math.ceil(max_delay / NS)) * NS
    return {
        "Attempts": retry.attempts,
        "Interval": interval,
        "Delay": delay,
        "DelayFunction": retry.delay_function,
        "MaxDelay": max_delay,
        "Unlimited": False,
    }


def _task_config(driver: str, container: Container) -> dict[str, Any]:
    config: dict[str, Any] = {
        "image": container.image,
        "command": container.argv[0],
        "args": container.argv[1:],
        # A relative source is resolved in the task directory: the dispatch payload lands in local/.
        "volumes": [f"local/{PAYLOAD_FILE}:{CONTAINER_JOB_FILE}:ro"],
    }
    shm = container.compute.shm_bytes
    if shm is not None:
        # docker takes bytes; the podman driver takes a size string.
        config["shm_size"] = shm if driver == "docker" else f"{memory_mb(shm)}m"
    return config


def _task(spec: TaskAPISpec, driver: str, container: Container, leader: bool) -> dict[str, Any]:
    compute = container.compute
    resources: dict[str, Any] = {"CPU": cpu_mhz(compute.millicores)}
    if compute.memory_bytes is not None:
        resources["MemoryMB"] = memory_mb(compute.memory_bytes)
    if compute.gpu:
        resources["Devices"] = [{"Name": "nvidia/gpu", "Count": compute.gpu}]
    env = {
        **container.env,
        "TASKAPI_JOB_ID": "${NOMAD_META_task_id}",
        "TASKAPI_API_NAME": spec.name,
        "TASKAPI_JOB_FILE": "${NOMAD_TASK_DIR}/" + PAYLOAD_FILE,
    }
    return {
        "Name": container.name,
        "Driver": driver,
        "Leader": leader,
        "Config": _task_config(driver, container),
        "Env": env,
        "Resources": resources,
        "DispatchPayload": {"File": PAYLOAD_FILE},
        "KillTimeout": round(spec.kill_timeout_seconds * NS),
        "KillSignal": "SIGTERM",
    }


def build_job(
    spec: TaskAPISpec, namespace: str, created_at: str, updated_at: str, default_driver: str | None = None
) -> dict[str, Any]:
    """The parameterized batch job ``taskapi-<name>`` for ``spec`` (the ``Job`` of ``POST /v1/jobs``)."""
    driver = driver_of(spec, default_driver)
    document = spec.to_document()
    document["driver"] = driver
    group: dict[str, Any] = {
        "Name": GROUP,
        "Count": 1,
        "RestartPolicy": {"Attempts": 0, "Interval": 24 * 3600 * NS, "Delay": 15 * NS, "Mode": "fail"},
        "ReschedulePolicy": _reschedule_policy(spec),
        "MaxRunDuration": spec.timeout * NS,
        "Tasks": [_task(spec, driver, c, leader=i == 0) for i, c in enumerate(spec.pod.containers)],
    }
    job: dict[str, Any] = {
        "ID": parent_id(spec.name),
        "Name": parent_id(spec.name),
        "Namespace": namespace,
        "Type": "batch",
        "Datacenters": ["*"],
        "Priority": 50,
        "ParameterizedJob": {"Payload": "required", "MetaRequired": META_REQUIRED, "MetaOptional": META_OPTIONAL},
        "Meta": {
            META_API: spec.name,
            META_SPEC: json.dumps(document, sort_keys=True, separators=(",", ":")),
            META_CREATED: created_at,
            META_UPDATED: updated_at,
        },
        "TaskGroups": [group],
    }
    pools = task_pools(spec)
    if len(pools) == 1:
        job["NodePool"] = pools[0].node_pool
    else:
        # Several pools: the job may go to any node (pool "all") whose class is one of theirs.
        job["NodePool"] = "all"
        classes = "|".join(pool.node_class for pool in pools)
        job["Constraints"] = [{"LTarget": "${node.class}", "RTarget": f"^({classes})$", "Operand": "regexp"}]
    return job


def task_pools(spec: TaskAPISpec) -> list[Pool]:
    """The pools a spec's tasks may run in: its ``node_groups``, else the default pool (GPU or not)."""
    catalog = load_catalog()
    if not spec.node_groups:
        return [catalog.default_for(gpu=any(c.compute.gpu for c in spec.pod.containers))]
    pools = []
    for name in spec.node_groups:
        try:
            pool = catalog.get(name)
        except KeyError as exc:
            raise Unprocessable(str(exc.args[0])) from None
        if not pool.runs_tasks:
            raise Unprocessable(f"node group {name!r} runs the platform's own jobs, not tasks")
        pools.append(pool)
    return pools


def check_timeout(spec: TaskAPISpec, timeout: int | None) -> int:
    """A task's effective timeout; longer than the API's is refused (the job's MaxRunDuration would cut it)."""
    if timeout is None:
        return spec.timeout
    if timeout > spec.timeout:
        raise Unprocessable(
            f"timeout {timeout}s is longer than the Task API's timeout ({spec.timeout}s), which on Nomad is every "
            "attempt's max_run_duration; raise the API's 'timeout' to allow longer tasks"
        )
    return timeout


def dispatch_body(record: TaskRecord, idempotency_hash: str | None) -> dict[str, Any]:
    """The ``POST /v1/job/<parent>/dispatch`` body; PayloadTooLarge before Nomad would refuse it."""
    payload = record.model_dump_json().encode()
    if len(payload) > PAYLOAD_LIMIT:
        raise PayloadTooLarge(
            f"the task record is {len(payload)} bytes, over Nomad's dispatch payload limit of {PAYLOAD_LIMIT} "
            "bytes (16 KiB); pass large inputs by reference (e.g. a URL in config)"
        )
    meta = {
        META_TASK_ID: record.job_id,
        META_SUBMITTED: record.start_time,
        META_TIMEOUT: str(record.timeout),
        META_CONFIG: json.dumps(record.config, separators=(",", ":")),
    }
    if idempotency_hash is not None:
        meta[META_REQUEST_HASH] = idempotency_hash
    return {"Payload": base64.b64encode(payload).decode(), "Meta": meta, "IdPrefixTemplate": record.job_id}
