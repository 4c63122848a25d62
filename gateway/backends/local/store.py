"""The local backend's state: one SQLite database in WAL mode, shared by gateway workers and the runner.

Each process (and each thread) opens its own connection. Writes that check then set run in
``BEGIN IMMEDIATE`` transactions, and every status change is a conditional ``UPDATE ... WHERE status IN``
so that a task changes state exactly once even when processes race.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.models import TaskRecord
from gateway.task_states import Outcome, TaskStatus, ended_before_start
from gateway.timestamps import rfc3339

# What the state machine makes of a pending task that is stopped or times out (there is no attempt to judge).
STOPPED_WHILE_PENDING = ended_before_start(Outcome.STOPPED).value
TIMED_OUT_WHILE_PENDING = ended_before_start(Outcome.TIMED_OUT).value

BUSY_TIMEOUT_MS = 10_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS apis (
    name TEXT PRIMARY KEY,
    endpoint TEXT NOT NULL UNIQUE,
    spec TEXT NOT NULL,
    driver TEXT NOT NULL,
    timeout INTEGER NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS tasks (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    api_name TEXT NOT NULL,
    status TEXT NOT NULL,
    config TEXT NOT NULL,
    timeout INTEGER NOT NULL,
    submitted_at REAL NOT NULL,
    deadline REAL NOT NULL,
    ended_at REAL,
    message TEXT,
    not_before REAL NOT NULL DEFAULT 0,
    stop_reason TEXT,
    retries_used INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    idem_key TEXT,
    idem_hash TEXT,
    UNIQUE (api_name, idem_key)
);
-- Newest-first pages per API, optionally per status; seq is the cursor.
CREATE INDEX IF NOT EXISTS tasks_api_seq ON tasks (api_name, seq);
CREATE INDEX IF NOT EXISTS tasks_api_status_seq ON tasks (api_name, status, seq);
-- The runner's scans touch only tasks in progress.
CREATE INDEX IF NOT EXISTS tasks_pending_fifo ON tasks (seq) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS tasks_running ON tasks (seq) WHERE status = 'running';
CREATE INDEX IF NOT EXISTS tasks_deadline ON tasks (deadline) WHERE status IN ('pending', 'running');
CREATE TABLE IF NOT EXISTS attempts (
    task_id TEXT NOT NULL,
    n INTEGER NOT NULL,
    node TEXT,
    started_at REAL,
    ended_at REAL,
    exit_code INTEGER,
    outcome TEXT,
    message TEXT,
    shim_pid INTEGER,
    shim_start_ticks INTEGER,
    PRIMARY KEY (task_id, n)
) WITHOUT ROWID;
"""

# Connections inherited from a parent process, deliberately kept open and unused (see Store.conn).
_INHERITED: list[sqlite3.Connection] = []


def now() -> float:
    """The current time as seconds since the epoch (how the database stores times)."""
    return time.time()


@dataclass(frozen=True)
class TaskRow:
    """One row of ``tasks``."""

    seq: int
    id: str
    api_name: str
    status: TaskStatus
    config: dict[str, Any]
    timeout: int
    submitted_at: float
    deadline: float
    ended_at: float | None
    message: str | None
    not_before: float
    stop_reason: str | None
    retries_used: int
    attempts: int

    def record(self) -> TaskRecord:
        """The task as submitted: what the gateway answers and what the task reads as its job file."""
        return TaskRecord(
            job_id=self.id,
            api_name=self.api_name,
            config=self.config,
            timeout=self.timeout,
            start_time=rfc3339(self.submitted_at) or "",
        )

    @classmethod
    def from_row(cls, row: sqlite3.Row | dict[str, Any]) -> TaskRow:
        """Build from a ``SELECT TASK_COLUMNS`` row."""
        values = dict(row)
        values["status"] = TaskStatus(values["status"])
        values["config"] = json.loads(values["config"])
        return cls(**values)


TASK_COLUMNS = (
    "seq, id, api_name, status, config, timeout, submitted_at, deadline, ended_at, message, "
    "not_before, stop_reason, retries_used, attempts"
)


@dataclass(frozen=True)
class AttemptRow:
    """One row of ``attempts``."""

    task_id: str
    n: int
    node: str | None
    started_at: float | None
    ended_at: float | None
    exit_code: int | None
    outcome: str | None
    message: str | None
    shim_pid: int | None
    shim_start_ticks: int | None


ATTEMPT_COLUMNS = "task_id, n, node, started_at, ended_at, exit_code, outcome, message, shim_pid, shim_start_ticks"


@dataclass(frozen=True)
class ApiRow:
    """One row of ``apis``."""

    name: str
    endpoint: str
    spec: dict[str, Any]
    driver: str
    timeout: int
    created_at: float
    updated_at: float


class Store:
    """Connections to the state database, one per thread and process."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        path.parent.mkdir(parents=True, exist_ok=True)
        # A throwaway connection: a process that forks later (gunicorn's master) should hold none.
        setup = self._connect()
        try:
            # One transaction, so that processes starting together do not trip over a half-made schema.
            setup.executescript(f"BEGIN IMMEDIATE;{SCHEMA}COMMIT;")
        finally:
            setup.close()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode = WAL")
        # NORMAL is durable across process crashes in WAL mode; only an OS crash may lose the last commits.
        conn.execute("PRAGMA synchronous = NORMAL")
        return conn

    @property
    def conn(self) -> sqlite3.Connection:
        """This thread's connection (a new one after a fork: SQLite connections must not cross forks)."""
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            if getattr(local, "conn", None) is not None:
                # Inherited across a fork: never close it here (closing may checkpoint or unlock on behalf
                # of the parent), just keep it out of the garbage collector's reach.
                _INHERITED.append(local.conn)
            local.conn, local.pid = self._connect(), os.getpid()
        return local.conn

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A ``BEGIN IMMEDIATE`` transaction: committed on success, rolled back on error."""
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            # SQLite may already have rolled back on its own (a full disk, for one).
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    # --- APIs -------------------------------------------------------------------------------------------

    def get_api(self, name: str) -> ApiRow | None:
        """The API called ``name``, if deployed."""
        row = self.conn.execute("SELECT * FROM apis WHERE name = ?", (name,)).fetchone()
        return _api(row)

    def api_for_endpoint(self, endpoint: str) -> ApiRow | None:
        """The API serving ``endpoint``, if any."""
        row = self.conn.execute("SELECT * FROM apis WHERE endpoint = ?", (endpoint,)).fetchone()
        return _api(row)

    def list_apis(self) -> list[ApiRow]:
        """Every deployed API, by name."""
        return [_api_row(r) for r in self.conn.execute("SELECT * FROM apis ORDER BY name")]

    def put_api(self, name: str, endpoint: str, spec: dict[str, Any], driver: str, timeout: int) -> ApiRow:
        """Create or replace an API; raise ``ValueError`` if another API already serves ``endpoint``."""
        with self.write() as conn:
            other = conn.execute("SELECT name FROM apis WHERE endpoint = ? AND name != ?", (endpoint, name)).fetchone()
            if other:
                raise ValueError(f"the endpoint {endpoint!r} is already served by the API {other[0]!r}")
            ts = now()
            conn.execute(
                "INSERT INTO apis (name, endpoint, spec, driver, timeout, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET endpoint = excluded.endpoint, "
                "spec = excluded.spec, driver = excluded.driver, timeout = excluded.timeout, "
                "updated_at = excluded.updated_at",
                (name, endpoint, json.dumps(spec), driver, timeout, ts, ts),
            )
            row = conn.execute("SELECT * FROM apis WHERE name = ?", (name,)).fetchone()
        return _api_row(row)

    def delete_api(self, name: str) -> bool:
        """Stop the API's tasks in progress and remove it; False if it did not exist."""
        with self.write() as conn:
            ts = now()
            conn.execute(
                "UPDATE tasks SET status = ?, ended_at = ?, message = 'the API was deleted', "
                "stop_reason = 'stopped' WHERE api_name = ? AND status = 'pending'",
                (STOPPED_WHILE_PENDING, ts, name),
            )
            conn.execute(
                "UPDATE tasks SET stop_reason = 'stopped', message = 'the API was deleted' "
                "WHERE api_name = ? AND status = 'running' AND stop_reason IS NULL",
                (name,),
            )
            return conn.execute("DELETE FROM apis WHERE name = ?", (name,)).rowcount > 0

    # --- tasks: gateway side ----------------------------------------------------------------------------

    def insert_task(
        self,
        task_id: str,
        api_name: str,
        config_json: str,
        timeout: int | None,
        idem_key: str | None,
        idem_hash: str | None,
    ) -> tuple[int, float] | None:
        """Insert a pending task in one statement; its (timeout, submission time), or None if not inserted.

        None means the API does not exist or the idempotency key is already used.
        """
        ts = now()
        row = self.conn.execute(
            "INSERT INTO tasks (id, api_name, status, config, timeout, submitted_at, deadline, idem_key, idem_hash) "
            "SELECT ?, name, 'pending', ?, COALESCE(?, timeout), ?, ? + COALESCE(?, timeout), ?, ? "
            "FROM apis WHERE name = ? ON CONFLICT (api_name, idem_key) DO NOTHING RETURNING timeout",
            (task_id, config_json, timeout, ts, ts, timeout, idem_key, idem_hash, api_name),
        ).fetchone()
        return None if row is None else (row[0], ts)

    def task_by_idem_key(self, api_name: str, idem_key: str) -> tuple[TaskRow, str] | None:
        """The task submitted with ``idem_key`` and its body hash."""
        row = self.conn.execute(
            f"SELECT {TASK_COLUMNS}, idem_hash FROM tasks WHERE api_name = ? AND idem_key = ?",
            (api_name, idem_key),
        ).fetchone()
        if row is None:
            return None
        values = dict(row)
        idem_hash = values.pop("idem_hash")
        return TaskRow.from_row(values), idem_hash

    def get_task(self, task_id: str) -> TaskRow | None:
        """A task by ID."""
        row = self.conn.execute(f"SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?", (task_id,)).fetchone()
        return None if row is None else TaskRow.from_row(row)

    def list_tasks(self, api_name: str, status: TaskStatus | None, limit: int, before_seq: int | None) -> list[TaskRow]:
        """Up to ``limit`` tasks of an API, newest first, older than ``before_seq``."""
        where = "api_name = ?"
        params: list[Any] = [api_name]
        if status is not None:
            where += " AND status = ?"
            params.append(status.value)
        if before_seq is not None:
            where += " AND seq < ?"
            params.append(before_seq)
        rows = self.conn.execute(
            f"SELECT {TASK_COLUMNS} FROM tasks WHERE {where} ORDER BY seq DESC LIMIT ?", (*params, limit)
        ).fetchall()
        return [TaskRow.from_row(r) for r in rows]

    def attempts_of(self, task_ids: list[str]) -> dict[str, list[AttemptRow]]:
        """The attempts of each task, in order."""
        out: dict[str, list[AttemptRow]] = {t: [] for t in task_ids}
        if not task_ids:
            return out
        marks = ",".join("?" * len(task_ids))
        rows = self.conn.execute(
            f"SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE task_id IN ({marks}) ORDER BY task_id, n", task_ids
        )
        for row in rows:
            out[row["task_id"]].append(AttemptRow(**dict(row)))
        return out

    def request_stop(self, task_id: str) -> TaskStatus | None:
        """Stop a task: a pending one at once, a running one by asking the runner.

        Returns the status the task had when the request was recorded (None if unknown); a final status
        means nothing was changed.
        """
        with self.write() as conn:
            row = conn.execute("SELECT status FROM tasks WHERE id = ?", (task_id,)).fetchone()
            if row is None:
                return None
            status = TaskStatus(row[0])
            if status is TaskStatus.PENDING:
                conn.execute(
                    "UPDATE tasks SET status = ?, stop_reason = 'stopped', ended_at = ?, "
                    "message = 'stopped while pending' WHERE id = ? AND status = 'pending'",
                    (STOPPED_WHILE_PENDING, now(), task_id),
                )
            elif status is TaskStatus.RUNNING:
                conn.execute(
                    "UPDATE tasks SET stop_reason = 'stopped' WHERE id = ? AND status = 'running' "
                    "AND stop_reason IS NULL",
                    (task_id,),
                )
        return status

    def status_counts(self) -> dict[tuple[str, str], int]:
        """Number of tasks per (API name, status)."""
        rows = self.conn.execute("SELECT api_name, status, COUNT(*) FROM tasks GROUP BY api_name, status")
        return {(r[0], r[1]): r[2] for r in rows}

    # --- tasks: runner side -----------------------------------------------------------------------------

    def running_tasks(self) -> list[TaskRow]:
        """Every running task."""
        rows = self.conn.execute(f"SELECT {TASK_COLUMNS} FROM tasks WHERE status = 'running' ORDER BY seq")
        return [TaskRow.from_row(r) for r in rows]

    def pending_ready(self, at: float, limit: int, skip_apis: list[str]) -> list[TaskRow]:
        """Pending tasks whose retry wait is over, oldest first, leaving out the APIs in ``skip_apis``."""
        marks = ",".join("?" * len(skip_apis))
        rows = self.conn.execute(
            f"SELECT {TASK_COLUMNS} FROM tasks WHERE status = 'pending' AND not_before <= ? "
            f"AND api_name NOT IN ({marks}) ORDER BY seq LIMIT ?",
            (at, *skip_apis, limit),
        )
        return [TaskRow.from_row(r) for r in rows]

    def newest_pending_seq(self, api_name: str) -> int:
        """The sequence number of an API's newest pending task (0 if none)."""
        row = self.conn.execute(
            "SELECT MAX(seq) FROM tasks WHERE api_name = ? AND status = 'pending'", (api_name,)
        ).fetchone()
        return row[0] or 0

    def explain_pending(self, api_name: str, message: str, at: float, after_seq: int) -> None:
        """Set the message of an API's pending tasks newer than ``after_seq`` not waiting for a retry."""
        self.conn.execute(
            "UPDATE tasks SET message = ? WHERE api_name = ? AND status = 'pending' AND seq > ? "
            "AND not_before <= ? AND message IS NOT ?",
            (message, api_name, after_seq, at, message),
        )

    def next_wakeup(self, at: float) -> float | None:
        """The earliest future retry time or deadline of a task in progress."""
        row = self.conn.execute(
            "SELECT MIN(t) FROM ("
            "SELECT MIN(deadline) AS t FROM tasks WHERE status IN ('pending', 'running') AND deadline > ? "
            "UNION ALL SELECT MIN(not_before) FROM tasks WHERE status = 'pending' AND not_before > ?)",
            (at, at),
        ).fetchone()
        return row[0]

    def time_out(self, at: float) -> int:
        """End pending tasks past their deadline as timed_out, and ask running ones to stop.

        A cheap read first: the write lock is taken only when a deadline has actually passed.
        """
        due = self.conn.execute(
            "SELECT 1 FROM tasks WHERE status IN ('pending', 'running') AND deadline <= ? "
            "AND stop_reason IS NULL LIMIT 1",
            (at,),
        ).fetchone()
        if due is None:
            return 0
        with self.write() as conn:
            pending = conn.execute(
                "UPDATE tasks SET status = ?, stop_reason = 'timed_out', ended_at = ?, "
                "message = 'timed out before it could start' WHERE status = 'pending' AND deadline <= ?",
                (TIMED_OUT_WHILE_PENDING, at, at),
            ).rowcount
            running = conn.execute(
                "UPDATE tasks SET stop_reason = 'timed_out' "
                "WHERE status = 'running' AND deadline <= ? AND stop_reason IS NULL",
                (at,),
            ).rowcount
        return pending + running

    def set_message(self, task_id: str, message: str) -> None:
        """Explain why a pending task waits."""
        self.conn.execute("UPDATE tasks SET message = ? WHERE id = ? AND status = 'pending'", (message, task_id))

    def start_attempt(self, task_id: str, n: int, node: str) -> bool:
        """Mark a pending task running with a new attempt ``n``; False if it is no longer pending."""
        with self.write() as conn:
            changed = conn.execute(
                "UPDATE tasks SET status = 'running', attempts = ?, message = NULL "
                "WHERE id = ? AND status = 'pending' AND attempts = ?",
                (n, task_id, n - 1),
            ).rowcount
            if not changed:
                return False
            conn.execute(
                "INSERT INTO attempts (task_id, n, node, started_at) VALUES (?, ?, ?, ?)",
                (task_id, n, node, now()),
            )
        return True

    def undo_attempt(self, task_id: str, n: int) -> bool:
        """Take back attempt ``n`` of a running task whose shim never started the task: pending again, as before."""
        with self.write() as conn:
            changed = conn.execute(
                "UPDATE tasks SET status = 'pending', attempts = ? "
                "WHERE id = ? AND status = 'running' AND attempts = ?",
                (n - 1, task_id, n),
            ).rowcount
            if changed:
                conn.execute("DELETE FROM attempts WHERE task_id = ? AND n = ? AND ended_at IS NULL", (task_id, n))
        return bool(changed)

    def set_shim(self, task_id: str, n: int, pid: int, start_ticks: int) -> None:
        """Record the shim running an attempt."""
        self.conn.execute(
            "UPDATE attempts SET shim_pid = ?, shim_start_ticks = ? WHERE task_id = ? AND n = ?",
            (pid, start_ticks, task_id, n),
        )

    def open_attempts(self) -> list[AttemptRow]:
        """Attempts that have not ended, of running tasks."""
        rows = self.conn.execute(
            f"SELECT {', '.join('a.' + c.strip() for c in ATTEMPT_COLUMNS.split(','))} FROM tasks t "
            "JOIN attempts a ON a.task_id = t.id AND a.n = t.attempts "
            "WHERE t.status = 'running' AND a.outcome IS NULL"
        )
        return [AttemptRow(**dict(r)) for r in rows]

    def end_attempt(
        self,
        task_id: str,
        n: int,
        attempt: dict[str, Any],
        task: dict[str, Any],
    ) -> bool:
        """Close attempt ``n`` and move its running task on, both or neither; False if already done.

        ``attempt`` holds ended_at, exit_code, outcome, message; ``task`` the new status and the columns
        that go with it (ended_at, message, not_before, retries_used).
        """
        with self.write() as conn:
            closed = conn.execute(
                "UPDATE attempts SET ended_at = ?, exit_code = ?, outcome = ?, message = ? "
                "WHERE task_id = ? AND n = ? AND outcome IS NULL",
                (attempt["ended_at"], attempt["exit_code"], attempt["outcome"], attempt["message"], task_id, n),
            ).rowcount
            if not closed:
                return False
            pending = task["status"] == TaskStatus.PENDING.value
            moved = conn.execute(
                "UPDATE tasks SET status = ?, ended_at = ?, message = ?, not_before = ?, retries_used = ?, "
                "stop_reason = CASE WHEN ? THEN NULL ELSE stop_reason END "
                "WHERE id = ? AND status = 'running' AND attempts = ?",
                (
                    task["status"],
                    task.get("ended_at"),
                    task.get("message"),
                    task.get("not_before", 0),
                    task["retries_used"],
                    pending,
                    task_id,
                    n,
                ),
            ).rowcount
            if not moved:
                raise RuntimeError(f"task {task_id} was not running attempt {n}")
        return True


def _api_row(row: sqlite3.Row) -> ApiRow:
    values = dict(row)
    values["spec"] = json.loads(values["spec"])
    return ApiRow(**values)


def _api(row: sqlite3.Row | None) -> ApiRow | None:
    return None if row is None else _api_row(row)
