"""A dispatched child job and its allocations → the task's status and attempts: the one place for that mapping.

An attempt is an allocation, numbered in creation order. How it ended comes from the allocation
(``ClientStatus``, ``DesiredStatus``/``DesiredDescription``/``DesiredTransition``) and from the ``Terminated``
event of the task that decided it (the first failed task, else the leader). What that outcome means for the
task is decided by :func:`gateway.task_states.after_attempt`, nothing else.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.models import Attempt, JobStatus, TaskRecord
from gateway.retry import retry_delay
from gateway.spec import TaskAPISpec
from gateway.task_states import REPLACED_OUTCOMES, Outcome, TaskStatus, after_attempt
from gateway.timestamps import rfc3339
from gateway.units import format_duration

from .jobs import (
    GROUP,
    META_API,
    META_CONFIG,
    META_SPEC,
    META_SUBMITTED,
    META_TASK_ID,
    META_TIMEOUT,
    NS,
    effective_retry,
)

ENDED = ("complete", "failed", "lost")
MAX_RUN = "max_run_duration"
PLATFORM_FAILURES = ("Driver Failure", "Setup Failure", "Failed Artifact Download", "Failed Validation")
_GO_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$")


def parse_time(text: str | None) -> float | None:
    """Seconds since the epoch for a Go RFC 3339 time; None for the zero time or nothing."""
    match = _GO_TIME.match(text or "")
    if not match or match.group(1).startswith("0001-"):
        return None
    base, fraction, zone = match.groups()
    moment = datetime.fromisoformat(base + ("+00:00" if zone == "Z" else zone))
    return moment.timestamp() + (float("0." + fraction) if fraction else 0.0)


def record_of(job: dict[str, Any]) -> TaskRecord:
    """The task record a child job carries in its Meta (the same one its payload holds)."""
    meta = job.get("Meta") or {}
    return TaskRecord(
        job_id=meta[META_TASK_ID],
        api_name=meta[META_API],
        config=json.loads(meta.get(META_CONFIG) or "{}"),
        timeout=int(meta[META_TIMEOUT]),
        start_time=meta[META_SUBMITTED],
    )


def spec_of(job: dict[str, Any]) -> TaskAPISpec:
    """The Task API spec as it was when the task was dispatched (children inherit the parent's Meta)."""
    return TaskAPISpec.model_validate(json.loads((job.get("Meta") or {})[META_SPEC]))


@dataclass(frozen=True)
class _Ended:
    """How one allocation ended."""

    outcome: Outcome
    exit_code: int | None
    message: str | None
    platform_error: bool


def _events(state: dict[str, Any]) -> list[dict[str, Any]]:
    return list(state.get("Events") or [])


def _deciding_state(alloc: dict[str, Any], leader: str) -> dict[str, Any]:
    states = alloc.get("TaskStates") or {}
    failed = [s for s in states.values() if s.get("Failed")]
    return failed[0] if failed else states.get(leader) or next(iter(states.values()), {})


def _exit(state: dict[str, Any]) -> tuple[int | None, bool]:
    """Exit code and OOM flag from the task's last ``Terminated`` event (Details values are strings)."""
    for event in reversed(_events(state)):
        if event.get("Type") != "Terminated":
            continue
        details = event.get("Details") or {}
        code = details.get("exit_code")
        exit_code = int(code) if code not in (None, "") else int(event.get("ExitCode") or 0)
        return exit_code, details.get("oom_killed") == "true"
    return None, False


def _timed_out(alloc: dict[str, Any]) -> bool:
    if MAX_RUN in (alloc.get("DesiredDescription") or ""):
        return True
    for state in (alloc.get("TaskStates") or {}).values():
        for event in _events(state):
            if event.get("Type") == "Killing" and MAX_RUN in (
                event.get("KillReason") or event.get("DisplayMessage") or ""
            ):
                return True
    return False


def _ended(alloc: dict[str, Any], leader: str, job_stopped: bool, stop_moment: float | None, deadline: float) -> _Ended:
    state = _deciding_state(alloc, leader)
    exit_code, oom = _exit(state)
    desired_stop = alloc.get("DesiredStatus") in ("stop", "evict")
    description = alloc.get("DesiredDescription") or None
    if alloc.get("ClientStatus") == "lost":
        return _Ended(Outcome.LOST, None, description or "the node was lost", False)
    if desired_stop and (alloc.get("DesiredTransition") or {}).get("Migrate"):
        message = "stopped to move off its node (spot interruption or drain)"
        return _Ended(Outcome.PREEMPTED, exit_code, message, False)
    if _timed_out(alloc):
        return _Ended(Outcome.TIMED_OUT, exit_code, "exceeded max_run_duration", False)
    if alloc.get("ClientStatus") == "failed":
        if exit_code is None:
            failure = next((e for e in reversed(_events(state)) if e.get("Type") in PLATFORM_FAILURES), None)
            if failure is not None:
                return _Ended(Outcome.FAILED, None, failure.get("DisplayMessage") or failure["Type"], True)
        if oom:
            return _Ended(Outcome.OOM, exit_code, "out of memory", False)
        return _Ended(Outcome.FAILED, exit_code, f"exit code {exit_code}" if exit_code is not None else None, False)
    if desired_stop and job_stopped:
        if stop_moment is not None and stop_moment >= deadline:
            return _Ended(Outcome.TIMED_OUT, exit_code, "stopped at the task's deadline", False)
        return _Ended(Outcome.STOPPED, exit_code, "stopped on request", False)
    return _Ended(Outcome.SUCCEEDED, exit_code, None, False)


def _times(alloc: dict[str, Any], ended: bool) -> tuple[float | None, float | None]:
    states = (alloc.get("TaskStates") or {}).values()
    starts = [t for t in (parse_time(s.get("StartedAt")) for s in states) if t is not None]
    ends = [t for t in (parse_time(s.get("FinishedAt")) for s in states) if t is not None]
    started = min(starts) if starts else None
    finished = None
    if ended:
        finished = max(ends) if ends else (alloc.get("ModifyTime") or 0) / NS or None
    return started, finished


def _waiting(job: dict[str, Any], spec: TaskAPISpec) -> str | None:
    """'waiting for capacity' when the scheduler has the group queued (nothing fits: e.g. a pool at zero)."""
    summary = ((job.get("JobSummary") or {}).get("Summary") or {}).get(GROUP) or {}
    if summary.get("Queued"):
        groups = ", ".join(spec.node_groups or []) or "default"
        return f"waiting for capacity in node group {groups}"
    return None


def group_by_task(children: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Child stubs grouped by task, in the order of each task's first child."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for child in children:
        groups.setdefault((child.get("Meta") or {}).get(META_TASK_ID, child["ID"]), []).append(child)
    return list(groups.values())


def deadline_of(record: TaskRecord) -> float:
    """When a task times out: its submission plus its timeout (seconds since the epoch)."""
    return (parse_time(record.start_time) or 0.0) + record.timeout


def stop_time_matters(status: JobStatus, now: float | None = None) -> bool:
    """Whether a stopped task may have been stopped at its deadline (then the stop's time decides: timed_out)."""
    return status.status is TaskStatus.STOPPED and deadline_of(status) <= (time.time() if now is None else now)


def statuses_of(
    tasks: list[list[dict[str, Any]]],
    allocs_of: Callable[[list[dict[str, Any]]], list[dict[str, Any]]],
    stop_times: Callable[[list[str]], dict[str, float]],
    now: float | None = None,
) -> list[JobStatus]:
    """The status of many tasks (each its child stubs), reading stop times only for the stopped tasks whose
    deadline has passed (``stop_times`` maps newest child job IDs to stop times, in as few calls as it can)."""
    found = [task_status(children, allocs_of(children), now) for children in tasks]
    unsure = [i for i, status in enumerate(found) if stop_time_matters(status, now)]
    if unsure:
        newest = {i: max(tasks[i], key=lambda c: c.get("CreateIndex", 0))["ID"] for i in unsure}
        times = stop_times(list(newest.values()))
        for i in unsure:
            found[i] = task_status(tasks[i], allocs_of(tasks[i]), now, stopped_at=times.get(newest[i]))
    return found


def task_status(
    jobs: list[dict[str, Any]],
    allocs: list[dict[str, Any]],
    now: float | None = None,
    stopped_at: float | None = None,
) -> JobStatus:
    """A task's JobStatus from its child jobs (``/v1/jobs`` stubs with Meta and JobSummary) and their allocations.

    A task has one child job, or more when the reconciler re-dispatched it after a drain killed its attempt
    without replacement; the first gives the record, the newest the job's state. ``stopped_at`` is when the
    newest child was stopped, if known: a stop at or after the deadline means ``timed_out``.
    """
    ordered = sorted(jobs, key=lambda j: j.get("CreateIndex", 0))
    first, job = ordered[0], ordered[-1]
    record = record_of(first)
    spec = spec_of(first)
    deadline = deadline_of(record)
    leader = spec.pod.containers[0].name
    allowed = spec.retry.attempts
    stopped = {j["ID"]: bool(j.get("Stop")) for j in ordered}
    attempts: list[Attempt] = []
    status = TaskStatus.PENDING
    retries_used = 0
    last: tuple[_Ended, float | None] | None = None
    current: dict[str, Any] | None = None
    for n, alloc in enumerate(sorted(allocs, key=lambda a: a.get("CreateIndex", 0)), start=1):
        ended = alloc.get("ClientStatus") in ENDED
        started_at, ended_at = _times(alloc, ended)
        attempt = Attempt(
            attempt=n,
            node=alloc.get("NodeName") or alloc.get("NodeID") or None,
            started_at=rfc3339(started_at),
            ended_at=rfc3339(ended_at),
        )
        attempts.append(attempt)
        if not ended:
            current = alloc
            continue
        how = _ended(alloc, leader, stopped.get(alloc.get("JobID", ""), False), stopped_at or ended_at, deadline)
        attempt.outcome, attempt.exit_code, attempt.message = how.outcome, how.exit_code, how.message
        if status.final:
            continue
        decision = after_attempt(how.outcome, retries_used, allowed, how.platform_error)
        retries_used += int(decision.counts_as_retry)
        status = decision.status
        last = (how, ended_at)
    message: str | None = None
    if not status.final:
        status, message = _in_progress(job, spec, current, last, retries_used, now)
        if status is TaskStatus.STOPPED and stopped_at is not None and stopped_at >= deadline:
            status, message = TaskStatus.TIMED_OUT, "stopped at the task's deadline"
    end_time = None
    if status.final:
        ends = [parse_time(a.ended_at) for a in attempts if a.ended_at]
        end_time = rfc3339(max((e for e in ends if e is not None), default=stopped_at))
        if status is TaskStatus.UNEXPECTED_ERROR and last is not None:
            message = last[0].message
    return JobStatus(
        **record.model_dump(),
        status=status,
        end_time=end_time,
        worker_counts=None if status.final else {status.value: 1},
        attempts=attempts,
        message=message,
    )


def _in_progress(
    job: dict[str, Any],
    spec: TaskAPISpec,
    current: dict[str, Any] | None,
    last: tuple[_Ended, float | None] | None,
    retries_used: int,
    now: float | None,
) -> tuple[TaskStatus, str | None]:
    """Status and message of a task that has not reached a final status through its attempts."""
    if job.get("Stop"):
        return TaskStatus.STOPPED, "stopped on request"
    if current is not None:
        if current.get("ClientStatus") == "running":
            return TaskStatus.RUNNING, None
        return TaskStatus.PENDING, f"starting on node {current.get('NodeName') or current.get('NodeID')}"
    capacity = _waiting(job, spec)
    if last is None:
        return TaskStatus.PENDING, capacity or "waiting to be placed"
    how, ended_at = last
    if how.outcome in REPLACED_OUTCOMES:
        text = f"the last attempt was {how.outcome.value}; waiting for its replacement"
        return TaskStatus.PENDING, f"{text}, {capacity}" if capacity else text
    if job.get("Status") == "dead":
        # Nomad will not reschedule any more (its policy says so): the retries are over.
        final = after_attempt(how.outcome, spec.retry.attempts, spec.retry.attempts, how.platform_error)
        return final.status, how.message
    if capacity:
        return TaskStatus.PENDING, capacity
    delay = retry_delay(effective_retry(spec), retries_used)
    remaining = max(0.0, (ended_at or 0.0) + delay - (time.time() if now is None else now))
    return TaskStatus.PENDING, (
        f"retrying in {format_duration(remaining)}, attempt {retries_used + 1} of {spec.retry.attempts + 1}"
    )
