"""The Nomad backend (DESIGN 5.2): Task API = parameterized batch job, task = dispatched child, attempt = allocation.

Nomad is the only state. Cost of each operation in Nomad calls:

- submit: 1 (the dispatch; an idempotent replay reads the existing child: 2);
- a task's status: 2 (the child job found by ID prefix in one ``/v1/jobs`` call, with Meta and JobSummary,
  then its allocations), 3 for a stopped task whose deadline has passed (its stop time, from the
  ``job-deregister`` evaluation, tells ``stopped`` from ``timed_out``);
- a page of tasks: 2 whatever its size (one ``/v1/jobs`` page, one ``/v1/allocations`` call filtered on the page's
  job IDs; one more for stop times as above), so the list shows exactly what ``GET`` shows, attempts included.
  A ``status`` filter is applied to each page, so it may read several pages (at most ``MAX_SCAN_PAGES``, then
  the answer is a shorter page with a cursor);
- stop: 3 (status, then the child's deregistration).

With ``TASKAPI_ARCHIVE`` set, a task Nomad has garbage-collected is answered from the archive the reconciler
filled (``GET``, logs, and a 409 for a stop); the task list goes on into the archive after the oldest task Nomad
still knows.

API definitions (the parents' Meta) are cached for a few seconds per gateway process; a miss re-reads them at
once, so a new API is served at once everywhere; another process may serve an update or a deletion for up to
``API_CACHE_SECONDS`` (a dispatch to a deleted API fails with 404).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway.backends.base import Conflict, NotFound, Submitted, Unavailable, Unprocessable, request_hash
from gateway.config import Settings
from gateway.models import ApiInfo, JobStatus, TaskRecord
from gateway.spec import TaskAPISpec
from gateway.task_states import TaskStatus
from gateway.timestamps import rfc3339

from .client import FILTER_CHUNK, NomadClient, jobs_filter
from .jobs import (
    JOB_PREFIX,
    META_API,
    META_CREATED,
    META_REQUEST_HASH,
    META_SPEC,
    META_UPDATED,
    build_job,
    check_timeout,
    child_prefix,
    children_prefix,
    dispatch_body,
    new_task_id,
    parent_id,
)
from .status import group_by_task, record_of, statuses_of, task_status

if TYPE_CHECKING:
    from .archive import Archive

API_CACHE_SECONDS = 5.0
LOG_STREAMS = ("stdout", "stderr")
# A followed log waits for a first allocation with blocking queries of this length.
FOLLOW_WAIT = "30s"
# A status filter reads at most this many Nomad pages per request; a shorter page then comes with a cursor.
MAX_SCAN_PAGES = 10
# Cursors of list pages served from the archive start with this.
ARCHIVE_CURSOR = "archive:"


@dataclass(frozen=True)
class _Api:
    """A deployed Task API as its parent job's Meta describes it."""

    info: ApiInfo
    spec: TaskAPISpec


def _api_from_job(job: dict[str, Any]) -> _Api | None:
    """The API a parent job (stub or full) describes; None for a job that is not one of ours."""
    meta = job.get("Meta") or {}
    if META_SPEC not in meta or job.get("ParentID") or job.get("Stop"):
        return None
    spec = TaskAPISpec.model_validate(json.loads(meta[META_SPEC]))
    info = ApiInfo(
        name=spec.name,
        endpoint=spec.endpoint,
        spec=json.loads(meta[META_SPEC]),
        created_at=meta.get(META_CREATED, ""),
        updated_at=meta.get(META_UPDATED, ""),
    )
    return _Api(info, spec)


class NomadBackend:
    """The ``Backend`` port over a Nomad cluster (python-nomad); safe to share between threads."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.nomad = NomadClient(self.settings)
        self._lock = threading.Lock()
        self._apis: dict[str, _Api] = {}
        self._loaded_at = float("-inf")
        self.archive: Archive | None = None
        if self.settings.archive:
            from .archive import open_archive

            self.archive = open_archive(self.settings.archive)

    # --- APIs -----------------------------------------------------------------------------------------

    def _load_apis(self) -> dict[str, _Api]:
        stubs, _ = self.nomad.list_jobs(JOB_PREFIX, filter_='ParentID == ""')
        apis = {api.info.name: api for api in map(_api_from_job, stubs) if api is not None}
        with self._lock:
            self._apis, self._loaded_at = apis, time.monotonic()
        return apis

    def _cached(self, found: Callable[[_Api], bool]) -> _Api | None:
        """The first API ``found`` accepts: from the cache while fresh, else (or on a miss) read from Nomad."""
        if time.monotonic() - self._loaded_at < API_CACHE_SECONDS:
            hit = next(filter(found, self._apis.values()), None)
            if hit is not None:
                return hit
        return next(filter(found, self._load_apis().values()), None)

    def _api(self, name: str) -> _Api:
        api = self._cached(lambda a: a.info.name == name)
        if api is None:
            raise NotFound(f"no Task API named {name!r}")
        return api

    def deploy(self, spec: TaskAPISpec) -> ApiInfo:
        """Register (or update) the parameterized job ``taskapi-<name>``."""
        apis = self._load_apis()
        for other in apis.values():
            if other.info.name != spec.name and other.info.endpoint == spec.endpoint:
                raise Conflict(f"the endpoint {spec.endpoint!r} is already served by the Task API {other.info.name!r}")
        now = rfc3339(time.time()) or ""
        existing = apis.get(spec.name)
        created = existing.info.created_at if existing else now
        job = build_job(spec, self.nomad.namespace, created, now, self.settings.driver)
        self.nomad.register(job)
        self._load_apis()
        return self._api(spec.name).info

    def get_api(self, name: str) -> ApiInfo:
        """A Task API by name."""
        return self._api(name).info

    def api_for_endpoint(self, endpoint: str) -> ApiInfo:
        """The Task API serving ``endpoint``."""
        api = self._cached(lambda a: a.info.endpoint == endpoint)
        if api is None:
            raise NotFound(f"no Task API serves the endpoint {endpoint!r}")
        return api.info

    def list_apis(self) -> list[ApiInfo]:
        """Every deployed Task API, by name."""
        return [api.info for _, api in sorted(self._load_apis().items())]

    def delete_api(self, name: str) -> None:
        """Stop the API's tasks in progress, then stop and purge its parameterized job."""
        self._api(name)
        running, _ = self.nomad.list_jobs(children_prefix(name), filter_='Status != "dead"')
        for child in running:
            self.nomad.stop(child["ID"])
        self.nomad.stop(parent_id(name), purge=True)
        self._load_apis()

    # --- tasks ----------------------------------------------------------------------------------------

    def submit(
        self,
        api_name: str,
        config: dict[str, Any],
        timeout: int | None,
        idempotency_key: str | None = None,
    ) -> Submitted:
        """One dispatch; an idempotency key is Nomad's ``idempotency_token`` (a replay reads the first child)."""
        spec = self._api(api_name).spec
        task_id = new_task_id()
        record = TaskRecord(
            job_id=task_id,
            api_name=api_name,
            config=config,
            timeout=check_timeout(spec, timeout),
            start_time=rfc3339(time.time()) or "",
        )
        body_hash = request_hash(config, timeout) if idempotency_key is not None else None
        answer = self.nomad.dispatch(parent_id(api_name), dispatch_body(record, body_hash), idempotency_key)
        child_id = str(answer.get("DispatchedJobID") or "")
        if child_id.startswith(child_prefix(api_name, task_id)):
            return Submitted(record, created=True)
        # Nomad answered with the child an earlier dispatch with the same token created.
        child = self.nomad.job(child_id, missing=f"the task of Idempotency-Key {idempotency_key!r} is gone")
        first = record_of(child)
        if (child.get("Meta") or {}).get(META_REQUEST_HASH) != body_hash:
            raise Conflict(
                f"the Idempotency-Key {idempotency_key!r} was already used for task {first.job_id} "
                "with a different body"
            )
        return Submitted(first, created=False)

    def _children(self, api_name: str, task_id: str) -> list[dict[str, Any]]:
        """The child job stubs of a task (one ``/v1/jobs`` call): one, or more after a re-dispatch."""
        stubs, _ = self.nomad.list_jobs(child_prefix(api_name, task_id))
        if not stubs:
            raise NotFound(f"no task {task_id!r} in the Task API {api_name!r}")
        return stubs

    def _allocations(self, children: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if len(children) == 1:
            return self.nomad.allocations(children[0]["ID"])
        return self.nomad.allocations_matching(jobs_filter([c["ID"] for c in children]))

    def _locate(self, api_name: str, task_id: str) -> tuple[list[dict[str, Any]], JobStatus | None]:
        """The task's child jobs in Nomad, or no child and its archived record once Nomad has forgotten it."""
        try:
            return self._children(api_name, task_id), None
        except NotFound:
            archived = self._archived(api_name, task_id)
            if archived is None:
                raise
            return [], archived

    def _archived(self, api_name: str, task_id: str) -> JobStatus | None:
        """The archived record of a task Nomad no longer knows (None without an archive or a record)."""
        return self.archive.get(api_name, task_id) if self.archive is not None else None

    def get_task(self, api_name: str, task_id: str) -> JobStatus:
        """A task's status and attempts: 2 Nomad calls (3 for a task stopped after its deadline passed);
        from the archive once Nomad has forgotten the task."""
        children, archived = self._locate(api_name, task_id)
        return archived or self._statuses([children])[0]

    def _statuses(self, tasks: list[list[dict[str, Any]]]) -> list[JobStatus]:
        """The status of tasks (each a list of child stubs): one allocation query per ``FILTER_CHUNK`` jobs, and
        one evaluation query if some stopped task may have been stopped at its deadline."""
        by_job: dict[str, list[dict[str, Any]]] = {child["ID"]: [] for children in tasks for child in children}
        ids = list(by_job)
        if len(tasks) == 1:
            for alloc in self._allocations(tasks[0]):
                by_job.setdefault(alloc.get("JobID", ""), []).append(alloc)
        else:
            for start in range(0, len(ids), FILTER_CHUNK):
                for alloc in self.nomad.allocations_matching(jobs_filter(ids[start : start + FILTER_CHUNK])):
                    by_job.setdefault(alloc.get("JobID", ""), []).append(alloc)

        def allocs_of(children: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [a for child in children for a in by_job[child["ID"]]]

        return statuses_of(tasks, allocs_of, self.nomad.stop_times)

    def list_tasks(
        self, api_name: str, status: TaskStatus | None, limit: int, cursor: str | None
    ) -> tuple[list[JobStatus], str | None]:
        """A page of tasks, newest first (task IDs sort that way); the cursor is Nomad's next-page token.

        With an archive, the tasks Nomad has forgotten follow, older than any Nomad still knows (cursors
        ``archive:<key>``).
        """
        self._api(api_name)
        prefix = children_prefix(api_name)
        if cursor is not None and cursor.startswith(ARCHIVE_CURSOR) and self.archive is not None:
            return self._archived_page(api_name, status, limit, cursor[len(ARCHIVE_CURSOR) :], [])
        if cursor is not None and not cursor.startswith(prefix):
            raise Unprocessable(f"invalid cursor {cursor!r}: use the next_cursor of a previous page")
        page: list[JobStatus] = []
        token = cursor
        oldest: JobStatus | None = None
        for _ in range(MAX_SCAN_PAGES):
            stubs, token = self.nomad.list_jobs(prefix, per_page=limit - len(page), next_token=token)
            found = self._statuses(group_by_task(stubs))
            oldest = found[-1] if found else oldest
            page += [t for t in found if status is None or t.status is status]
            if token is None or len(page) >= limit:
                break
        if token is not None or self.archive is None:
            return page, token
        from .archive import sort_key

        return self._archived_page(api_name, status, limit, sort_key(oldest) if oldest else None, page)

    def _archived_page(
        self, api_name: str, status: TaskStatus | None, limit: int, after: str | None, page: list[JobStatus]
    ) -> tuple[list[JobStatus], str | None]:
        """Fill ``page`` with archived tasks older than the sort key ``after``."""
        assert self.archive is not None
        if len(page) >= limit:
            more, _ = self.archive.list(api_name, status, 1, after)
            return page, f"{ARCHIVE_CURSOR}{after}" if more and after else None
        archived, inner = self.archive.list(api_name, status, limit - len(page), after)
        return page + archived, f"{ARCHIVE_CURSOR}{inner}" if inner else None

    def stop_task(self, api_name: str, task_id: str) -> None:
        """Stop (deregister, not purge) the task's child job; Conflict if the task already ended."""
        children, archived = self._locate(api_name, task_id)
        if archived is not None:
            raise Conflict(f"task {task_id} already ended ({archived.status.value}); it cannot be stopped")
        current = task_status(children, self._allocations(children))
        if current.status.final:
            raise Conflict(f"task {task_id} already ended ({current.status.value}); it cannot be stopped")
        for child in children:
            if child.get("Status") != "dead":
                self.nomad.stop(child["ID"])

    def logs(self, api_name: str, task_id: str, stream: str, attempt: int | None, follow: bool) -> Iterator[bytes]:
        """An attempt's stdout or stderr from the client's fs API (default the latest attempt)."""
        if stream not in LOG_STREAMS:
            raise Unprocessable(f"unknown log stream {stream!r}: use stdout or stderr")
        found, archived = self._locate(api_name, task_id)
        if archived is not None:
            return self._archived_logs(archived, stream, attempt)
        children = sorted(found, key=lambda c: c.get("CreateIndex", 0))
        leader = json.loads(children[0]["Meta"][META_SPEC])["pod"]["containers"][0]["name"]
        allocs = sorted(self._allocations(children), key=lambda a: a.get("CreateIndex", 0))
        if attempt is not None and not 1 <= attempt <= len(allocs):
            raise NotFound(f"task {task_id} has no attempt {attempt} (it has {len(allocs)})")
        if attempt is None and not allocs:
            if not follow or task_status(children, allocs).status.final:
                return iter(())
            return self._first_logs(children[-1], leader, stream)
        alloc = allocs[(attempt or len(allocs)) - 1]
        return self.nomad.stream_logs(alloc["ID"], leader, stream, follow)

    def _archived_logs(self, task: JobStatus, stream: str, attempt: int | None) -> Iterator[bytes]:
        assert self.archive is not None
        if attempt is not None and not 1 <= attempt <= len(task.attempts):
            raise NotFound(f"task {task.job_id} has no attempt {attempt} (it has {len(task.attempts)})")
        if attempt is None and not task.attempts:
            return iter(())
        chunks = self.archive.logs(task.api_name, task.job_id, attempt or len(task.attempts), stream)
        return chunks if chunks is not None else iter(())

    def _first_logs(self, child: dict[str, Any], leader: str, stream: str) -> Iterator[bytes]:
        """Follow a task that has no allocation yet: wait for one with blocking queries, then stream it."""
        yield b""  # the response's headers go out now, not when the first allocation appears
        index = 0
        while True:
            allocs, index = self.nomad.wait_allocations(child["ID"], index, FOLLOW_WAIT)
            if allocs:
                first = min(allocs, key=lambda a: a.get("CreateIndex", 0))
                yield from self.nomad.stream_logs(first["ID"], leader, stream, follow=True)
                return
            stubs, _ = self.nomad.list_jobs(child["ID"])
            if not stubs or stubs[0].get("Stop") or stubs[0].get("Status") == "dead":
                return

    # --- health and metrics ---------------------------------------------------------------------------

    def check_ready(self) -> None:
        """Ready when Nomad answers and has a leader."""
        if not self.nomad.leader():
            raise Unavailable(f"Nomad at {self.nomad.address} has no cluster leader")

    def status_counts(self) -> dict[tuple[str, str], int]:
        """Tasks per (API, status) among the children Nomad still knows (2 calls, more to date stops)."""
        children, _ = self.nomad.list_jobs(JOB_PREFIX, filter_='ParentID != ""')
        allocs: dict[str, list[dict[str, Any]]] = {}
        for alloc in self.nomad.allocations_matching(f'JobID matches "^{JOB_PREFIX}"'):
            allocs.setdefault(alloc.get("JobID", ""), []).append(alloc)

        def allocs_of(task: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [a for child in task for a in allocs.get(child["ID"], [])]

        tasks = group_by_task([c for c in children if META_API in (c.get("Meta") or {})])
        counts: dict[tuple[str, str], int] = {}
        for status in statuses_of(tasks, allocs_of, self.nomad.stop_times):
            key = (status.api_name, status.status.value)
            counts[key] = counts.get(key, 0) + 1
        return counts
