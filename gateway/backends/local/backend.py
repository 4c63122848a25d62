"""The local backend as gunicorn workers use it: reads and writes the shared database, wakes the runner."""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gateway.backends.base import Conflict, NotFound, Submitted, Unavailable, Unprocessable, request_hash
from gateway.config import Settings
from gateway.models import ApiInfo, Attempt, JobStatus, TaskRecord
from gateway.spec import TaskAPISpec
from gateway.task_states import TaskStatus
from gateway.timestamps import rfc3339

from .capacity import task_needs, total_capacity
from .drivers import runtime_problem
from .layout import DB_NAME, LOG_STREAMS, PID_NAME, STATUS_FILE, attempt_dir, pid_file_process
from .notify import Waker
from .store import ApiRow, AttemptRow, Store, TaskRow

# How often a followed log is polled for new bytes, and how often the database is asked whether the
# attempt ended (the shim's status file usually says so first).
FOLLOW_POLL = 0.1
FOLLOW_DB_CHECK = 1.0
LOG_CHUNK = 64 * 1024
# How long after a task's deadline a followed log gives up waiting for the attempt to end.
FOLLOW_GRACE = 600.0


class LocalBackend:
    """The ``Backend`` port over the local state directory; safe to share between threads."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.state_dir: Path = self.settings.state_dir
        self.store = Store(self.state_dir / DB_NAME)
        self.waker = Waker(self.state_dir)

    # --- APIs -----------------------------------------------------------------------------------------

    def _driver_for(self, spec: TaskAPISpec) -> str:
        """The driver a spec runs with here, or Unprocessable with the reason."""
        chosen = spec.driver or self.settings.driver
        if chosen is None:
            for runtime in ("podman", "docker"):
                if runtime_problem(runtime, self.settings.runtime_args(runtime)[0]) is None:
                    chosen = runtime
                    break
            else:
                raise Unprocessable(
                    "no container runtime (podman or docker) is available on this host; install one, "
                    "or set 'driver: process' in the spec to run the command directly on the host"
                )
        if chosen != "process":
            problem = runtime_problem(chosen, self.settings.runtime_args(chosen)[0])
            if problem:
                raise Unprocessable(f"driver {chosen!r}: {problem}")
            for i, container in enumerate(spec.pod.containers):
                if not container.image:
                    raise Unprocessable(f"pod.containers[{i}].image is required with driver {chosen!r}")
        elif len(spec.pod.containers) > 1:
            raise Unprocessable(
                "the process driver runs one container per task; use podman or docker for several containers"
            )
        return chosen

    def _check_capacity(self, spec: TaskAPISpec) -> None:
        needs = task_needs(spec)
        total = total_capacity(self.settings)
        if needs.gpus > total.gpus:
            raise Unprocessable(f"a task needs {needs.gpus} GPU(s) but this host has {total.gpus}")
        if needs.millicores > total.millicores:
            raise Unprocessable(f"a task needs {needs.millicores}m CPU but the runner has {total.millicores}m in all")
        if needs.memory > total.memory:
            raise Unprocessable(
                f"a task needs {needs.memory // 2**20}Mi memory but the runner has {total.memory // 2**20}Mi in all"
            )

    def deploy(self, spec: TaskAPISpec) -> ApiInfo:
        """Create or update a Task API after checking this host can run it."""
        driver = self._driver_for(spec)
        self._check_capacity(spec)
        document = spec.to_document()
        document["driver"] = driver
        try:
            row = self.store.put_api(spec.name, spec.endpoint, document, driver, spec.timeout)
        except ValueError as exc:
            raise Conflict(str(exc)) from None
        self.waker.wake()
        return _api_info(row)

    def get_api(self, name: str) -> ApiInfo:
        """A Task API by name."""
        row = self.store.get_api(name)
        if row is None:
            raise NotFound(f"no Task API named {name!r}")
        return _api_info(row)

    def api_for_endpoint(self, endpoint: str) -> ApiInfo:
        """The Task API serving ``endpoint``."""
        row = self.store.api_for_endpoint(endpoint)
        if row is None:
            raise NotFound(f"no Task API serves the endpoint {endpoint!r}")
        return _api_info(row)

    def list_apis(self) -> list[ApiInfo]:
        """Every deployed Task API, by name."""
        return [_api_info(row) for row in self.store.list_apis()]

    def delete_api(self, name: str) -> None:
        """Stop the API's tasks in progress and remove it; finished task records stay."""
        if not self.store.delete_api(name):
            raise NotFound(f"no Task API named {name!r}")
        self.waker.wake()

    # --- tasks ----------------------------------------------------------------------------------------

    def submit(
        self,
        api_name: str,
        config: dict[str, Any],
        timeout: int | None,
        idempotency_key: str | None = None,
    ) -> Submitted:
        """Queue a task (one INSERT), wake the runner; an idempotency key replays the same task."""
        config_json = json.dumps(config, separators=(",", ":"))
        body_hash = request_hash(config, timeout) if idempotency_key is not None else None
        task_id = secrets.token_hex(8)
        try:
            inserted = self.store.insert_task(task_id, api_name, config_json, timeout, idempotency_key, body_hash)
        except sqlite3.IntegrityError:
            # A task ID collision (1 in 2**64): draw again.
            task_id = secrets.token_hex(8)
            inserted = self.store.insert_task(task_id, api_name, config_json, timeout, idempotency_key, body_hash)
        if inserted is None:
            return self._replay(api_name, idempotency_key, body_hash)
        self.waker.wake()
        effective_timeout, submitted_at = inserted
        record = TaskRecord(
            job_id=task_id,
            api_name=api_name,
            config=config,
            timeout=effective_timeout,
            start_time=rfc3339(submitted_at) or "",
        )
        return Submitted(record, created=True)

    def _replay(self, api_name: str, key: str | None, body_hash: str | None) -> Submitted:
        found = self.store.task_by_idem_key(api_name, key) if key is not None else None
        if found is None:
            raise NotFound(f"no Task API named {api_name!r}")
        task, stored_hash = found
        if stored_hash != body_hash:
            raise Conflict(f"the Idempotency-Key {key!r} was already used for task {task.id} with a different body")
        return Submitted(task.record(), created=False)

    def _task(self, api_name: str, task_id: str) -> TaskRow:
        task = self.store.get_task(task_id)
        if task is None or task.api_name != api_name:
            raise NotFound(f"no task {task_id!r} in the Task API {api_name!r}")
        return task

    def get_task(self, api_name: str, task_id: str) -> JobStatus:
        """A task with its status and attempts."""
        task = self._task(api_name, task_id)
        return _job_status(task, self.store.attempts_of([task.id])[task.id])

    def list_tasks(
        self, api_name: str, status: TaskStatus | None, limit: int, cursor: str | None
    ) -> tuple[list[JobStatus], str | None]:
        """A page of tasks, newest first; the cursor is the last task's sequence number."""
        before = None
        if cursor is not None:
            if not cursor.isdigit():
                raise Unprocessable(f"invalid cursor {cursor!r}: use the next_cursor of a previous page")
            before = int(cursor)
        rows = self.store.list_tasks(api_name, status, limit + 1, before)
        page = rows[:limit]
        attempts = self.store.attempts_of([t.id for t in page])
        next_cursor = str(page[-1].seq) if len(rows) > limit and page else None
        return [_job_status(t, attempts[t.id]) for t in page], next_cursor

    def stop_task(self, api_name: str, task_id: str) -> None:
        """Stop a task in progress (a pending one at once); Conflict if it already ended."""
        self._task(api_name, task_id)
        status = self.store.request_stop(task_id)
        if status is None:
            raise NotFound(f"no task {task_id!r} in the Task API {api_name!r}")
        if status.final:
            raise Conflict(f"task {task_id} already ended ({status.value}); it cannot be stopped")
        self.waker.wake()

    def logs(self, api_name: str, task_id: str, stream: str, attempt: int | None, follow: bool) -> Iterator[bytes]:
        """An attempt's stdout or stderr (default the latest attempt); with ``follow``, until it ends."""
        if stream not in LOG_STREAMS:
            raise Unprocessable(f"unknown log stream {stream!r}: use stdout or stderr")
        task = self._task(api_name, task_id)
        if attempt is None:
            if task.attempts == 0 and not follow:
                return iter(())
            attempt = max(task.attempts, 1)
        elif not 1 <= attempt <= task.attempts:
            raise NotFound(f"task {task_id} has no attempt {attempt} (it has {task.attempts})")
        return self._read_log(task, attempt, stream, follow)

    def _attempt_over(self, task_id: str, n: int) -> bool:
        task = self.store.get_task(task_id)
        if task is None or task.status.final:
            return True
        if time.time() > task.deadline + FOLLOW_GRACE:
            # Past its deadline and still not ended: the runner is down; stop following rather than hang.
            return True
        if task.attempts < n:
            return False
        rows = self.store.attempts_of([task_id])[task_id]
        return rows[n - 1].ended_at is not None

    def _read_log(self, task: TaskRow, n: int, stream: str, follow: bool) -> Iterator[bytes]:
        folder = attempt_dir(self.state_dir, task.id, n)
        path = folder / stream
        handle = None
        last_db_check = 0.0
        try:
            while True:
                if handle is None and path.exists():
                    handle = open(path, "rb")
                chunk = handle.read(LOG_CHUNK) if handle else b""
                if chunk:
                    yield chunk
                    continue
                if not follow:
                    return
                # Drained: stop once the attempt has ended (its status file, or the database, says so).
                if (folder / STATUS_FILE).exists() and handle is not None:
                    rest = handle.read()
                    if rest:
                        yield rest
                    return
                if time.monotonic() - last_db_check >= FOLLOW_DB_CHECK:
                    last_db_check = time.monotonic()
                    if self._attempt_over(task.id, n):
                        if handle is None and path.exists():
                            handle = open(path, "rb")
                        if handle is not None:
                            rest = handle.read()
                            if rest:
                                yield rest
                        return
                time.sleep(FOLLOW_POLL)
        finally:
            if handle is not None:
                handle.close()

    # --- health and metrics ---------------------------------------------------------------------------

    def check_ready(self) -> None:
        """Ready when the database answers and the runner is alive."""
        try:
            self.store.conn.execute("SELECT 1 FROM apis LIMIT 1").fetchall()
        except sqlite3.Error as exc:
            raise Unavailable(f"the state database {self.state_dir / DB_NAME} is not usable: {exc}") from None
        if pid_file_process(self.state_dir / PID_NAME) is None:
            raise Unavailable(
                f"the local runner is not running for {self.state_dir} "
                "(start it with 'python -m gateway.backends.local.runner')"
            )

    def status_counts(self) -> dict[tuple[str, str], int]:
        """Number of tasks per (API name, status)."""
        return self.store.status_counts()


def _api_info(row: ApiRow) -> ApiInfo:
    return ApiInfo(
        name=row.name,
        endpoint=row.endpoint,
        spec=row.spec,
        created_at=rfc3339(row.created_at) or "",
        updated_at=rfc3339(row.updated_at) or "",
    )


def _job_status(task: TaskRow, attempts: list[AttemptRow]) -> JobStatus:
    in_progress = not task.status.final
    return JobStatus(
        **dict(task.record()),
        status=task.status,
        end_time=rfc3339(task.ended_at),
        worker_counts={task.status.value: 1} if in_progress else None,
        attempts=[
            Attempt(
                attempt=a.n,
                node=a.node,
                started_at=rfc3339(a.started_at),
                ended_at=rfc3339(a.ended_at),
                exit_code=a.exit_code,
                outcome=a.outcome,
                message=a.message,
            )
            for a in attempts
        ],
        message=task.message,
    )
