"""The reconciler (``python -m gateway.backends.nomad.reconciler``): what Nomad does not do for Task APIs on its own.

One pass looks at every task Nomad still knows (one ``/v1/jobs`` call, one ``/v1/allocations`` call) and:

- stops a task past its deadline (submission + timeout): its child job is deregistered, and the status mapping
  reads a stop at or after the deadline as ``timed_out``;
- re-places a task whose attempt a node drain killed without replacement (Nomad >= 1.11 leaves batch allocations
  of a drained node unreplaced): the task is dispatched again with the same task ID prefix, record and Meta, so
  its new child job and allocations join the task's attempts;
- archives every finished task (record and logs) through the ``Archive`` port, before Nomad's GC forgets it
  (``Archive.has`` first, so a restarted reconciler does not write everything again).

Every action is idempotent, so two reconcilers may run at once: a stop of a stopped job is a no-op, a
re-dispatch carries the idempotency token ``replace-<child job>`` (Nomad answers the second with the first's
child), and archiving the same task twice writes the same objects. Between passes it waits with a blocking query
on the jobs list, woken by any job change, and at the latest at the next deadline: no tight polling.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gateway.backends.base import BackendError, NotFound
from gateway.config import Settings
from gateway.models import JobStatus
from gateway.task_states import REPLACED_OUTCOMES, TaskStatus

from .client import NomadClient
from .jobs import JOB_PREFIX, META_API, META_REQUEST_HASH, dispatch_body, parent_id
from .status import deadline_of, group_by_task, record_of, spec_of, statuses_of

if TYPE_CHECKING:
    from .archive import Archive

log = logging.getLogger("taskapi.reconcile")

MAX_WAIT = 300.0  # seconds a blocking query waits at most
MIN_WAIT = 1.0
ERROR_PAUSE = 5.0


@dataclass
class Pass:
    """What one reconciliation pass did (task IDs), and when the next deadline falls."""

    timed_out: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    archived: list[str] = field(default_factory=list)
    next_deadline: float | None = None


def _newest(children: list[dict[str, Any]]) -> dict[str, Any]:
    return max(children, key=lambda c: c.get("CreateIndex", 0))


class Reconciler:
    """Deadlines, re-placement after drains and archiving, for every Task API in the namespace."""

    def __init__(self, settings: Settings, archive: Archive | None = None) -> None:
        self.nomad = NomadClient(settings)
        self.archive = archive
        self._archived: set[str] = set()

    def reconcile(self, children: list[dict[str, Any]] | None = None, now: float | None = None) -> Pass:
        """One pass over the given child job stubs (default: read them from Nomad)."""
        if children is None:
            children, _ = self.nomad.list_jobs(JOB_PREFIX, filter_='ParentID != ""')
        tasks = group_by_task([c for c in children if c.get("ParentID") and META_API in (c.get("Meta") or {})])
        allocs: dict[str, list[dict[str, Any]]] = {}
        if tasks:
            for alloc in self.nomad.allocations_matching(f'JobID matches "^{JOB_PREFIX}"'):
                allocs.setdefault(alloc.get("JobID", ""), []).append(alloc)
        moment = time.time() if now is None else now

        def allocs_of(children: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [a for child in children for a in allocs.get(child["ID"], [])]

        statuses = statuses_of(tasks, allocs_of, self.nomad.stop_times, moment)
        done = Pass()
        for task, status in zip(tasks, statuses, strict=True):
            try:
                self._one(task, status, allocs_of(task), moment, done)
            except BackendError as exc:
                log.warning("task %s of %s: %s", status.job_id, status.api_name, exc.detail)
        return done

    def _one(
        self, task: list[dict[str, Any]], status: JobStatus, allocs: list[dict[str, Any]], now: float, done: Pass
    ) -> None:
        if status.status.final:
            if self.archive is None or status.job_id in self._archived:
                return
            if self.archive.has(status.api_name, status.job_id):  # archived by an earlier run or another reconciler
                self._archived.add(status.job_id)
                return
            self._archive(task, status, allocs)
            done.archived.append(status.job_id)
            return
        deadline = deadline_of(status)
        if now >= deadline:
            for child in task:
                if not child.get("Stop"):
                    self.nomad.stop(child["ID"])
            log.info("task %s of %s passed its deadline: stopped", status.job_id, status.api_name)
            done.timed_out.append(status.job_id)
            return
        done.next_deadline = min(deadline, done.next_deadline or deadline)
        if self._drained(task, status):
            self._redispatch(task)
            log.info("task %s of %s lost its attempt to a drain: dispatched again", status.job_id, status.api_name)
            done.replaced.append(status.job_id)

    @staticmethod
    def _drained(task: list[dict[str, Any]], status: JobStatus) -> bool:
        """Whether the task waits for a replacement that Nomad will never place (its newest child is dead)."""
        newest = _newest(task)
        last = status.attempts[-1] if status.attempts else None
        return (
            status.status is TaskStatus.PENDING
            and last is not None
            and last.outcome in REPLACED_OUTCOMES
            and newest.get("Status") == "dead"
            and not newest.get("Stop")
        )

    def _redispatch(self, task: list[dict[str, Any]]) -> None:
        first = min(task, key=lambda c: c.get("CreateIndex", 0))
        record = record_of(first)
        body = dispatch_body(record, (first.get("Meta") or {}).get(META_REQUEST_HASH))
        self.nomad.dispatch(parent_id(record.api_name), body, f"replace-{_newest(task)['ID']}")

    def _archive(self, task: list[dict[str, Any]], status: JobStatus, allocs: list[dict[str, Any]]) -> None:
        """Hand the finished task and its attempts' logs to the archive (lost attempts' logs are unreachable)."""
        assert self.archive is not None
        leader = spec_of(min(task, key=lambda c: c.get("CreateIndex", 0))).pod.containers[0].name
        ordered = sorted(allocs, key=lambda a: a.get("CreateIndex", 0))
        logs: dict[tuple[int, str], bytes] = {}
        for attempt, alloc in zip(status.attempts, ordered, strict=True):
            if alloc.get("ClientStatus") == "lost":
                continue
            for stream in ("stdout", "stderr"):
                try:
                    logs[(attempt.attempt, stream)] = b"".join(
                        self.nomad.stream_logs(alloc["ID"], leader, stream, follow=False)
                    )
                except NotFound:
                    log.info("task %s attempt %d: %s is gone", status.job_id, attempt.attempt, stream)
        self.archive.put(status.api_name, status, logs)
        self._archived.add(status.job_id)

    def run(self, stop: threading.Event | None = None) -> None:
        """Reconcile until ``stop`` is set: a pass after every change of the jobs list, or at the next deadline."""
        stop = stop or threading.Event()
        index = 0
        wait = MIN_WAIT
        while not stop.is_set():
            try:
                stubs, index = self.nomad.wait_jobs(JOB_PREFIX, index, f"{wait:.0f}s")
                done = self.reconcile([s for s in stubs if s.get("ParentID")])
            except BackendError as exc:
                log.warning("reconcile pass failed: %s", exc.detail)
                index = 0
                stop.wait(ERROR_PAUSE)
                continue
            until = (done.next_deadline - time.time()) if done.next_deadline is not None else MAX_WAIT
            wait = min(MAX_WAIT, max(MIN_WAIT, until))


def main() -> None:
    """Run the reconciler with the gateway's settings (``TASKAPI_*`` and Nomad's own ``NOMAD_*`` variables)."""
    settings = Settings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    archive = None
    if settings.archive:
        from .archive import open_archive

        archive = open_archive(settings.archive)
    else:
        log.warning("TASKAPI_ARCHIVE is not set: finished tasks are not archived and vanish with Nomad's GC")
    Reconciler(settings, archive).run()


if __name__ == "__main__":
    main()
