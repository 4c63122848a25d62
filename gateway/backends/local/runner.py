"""The local runner: the one process that admits tasks, starts their shims and records how attempts end.

Run it with ``python -m gateway.backends.local.runner`` (settings from ``TASKAPI_*``, notably
``TASKAPI_STATE_DIR``). It holds an fcntl lock on ``<state_dir>/runner.lock``, so a second runner refuses to
start. It is single-threaded on purpose: it forks shims. SIGTERM ends it cleanly and leaves shims running;
the next runner re-adopts them.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import selectors
import signal
import socket
import sqlite3
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from gateway.config import Settings
from gateway.retry import retry_delay
from gateway.spec import TaskAPISpec
from gateway.task_states import Outcome, TaskStatus, after_attempt
from gateway.units import format_duration

from . import shim
from .capacity import Resources, task_needs, total_capacity
from .drivers import Launch, clean_leftovers
from .layout import (
    DB_NAME,
    JOB_FILE,
    LOCK_NAME,
    PID_NAME,
    SHIM_PID_FILE,
    STATUS_FILE,
    TASK_FILE,
    attempt_dir,
    is_alive,
    pid_file_process,
    read_json,
    shim_alive,
    start_ticks,
    write_json_atomic,
    write_pid_file,
)
from .notify import Listener
from .store import ApiRow, Store, TaskRow, now

log = logging.getLogger("taskapi.runner")

# The longest the runner sleeps: a safety net for adopted shims, whose end it can only see by polling.
MAX_SLEEP = 1.0
# Pending tasks looked at per pass; strict FIFO means the head of the queue is what matters.
ADMISSION_SCAN = 500

_STOP_OUTCOMES = {"stopped": Outcome.STOPPED, "timed_out": Outcome.TIMED_OUT}


class RunnerAlreadyRunning(RuntimeError):
    """Another runner holds the lock on the state directory."""


@dataclass
class Tracked:
    """An attempt whose shim the runner watches."""

    task_id: str
    n: int
    api_name: str
    pid: int | None
    ticks: int | None
    needs: Resources
    child: bool
    exited: bool = False
    term_sent: bool = False


@dataclass
class Runner:
    """The runner's state and one pass of its loop (``step``)."""

    settings: Settings
    store: Store
    capacity: Resources
    node: str = field(default_factory=socket.gethostname)
    tracked: dict[tuple[str, int], Tracked] = field(default_factory=dict)
    _specs: dict[str, tuple[float, TaskAPISpec]] = field(default_factory=dict)
    # The last message set on all pending tasks of an API, so that it is written once, not every pass.
    _api_messages: dict[str, tuple[str, int]] = field(default_factory=dict)

    @property
    def state_dir(self) -> Path:
        """The shared state directory."""
        return self.settings.state_dir

    def spec_of(self, api: ApiRow) -> TaskAPISpec:
        """The validated spec of an API, parsed once per version."""
        cached = self._specs.get(api.name)
        if cached is None or cached[0] != api.updated_at:
            cached = (api.updated_at, TaskAPISpec.model_validate(api.spec))
            self._specs[api.name] = cached
        return cached[1]

    def _spec_for(self, api_name: str) -> TaskAPISpec | None:
        api = self.store.get_api(api_name)
        return None if api is None else self.spec_of(api)

    # --- start-up -------------------------------------------------------------------------------------

    def adopt(self) -> None:
        """Take over the attempts a previous runner left: finish, keep watching, or declare them lost."""
        for attempt in self.store.open_attempts():
            folder = attempt_dir(self.state_dir, attempt.task_id, attempt.n)
            pid, ticks = attempt.shim_pid, attempt.shim_start_ticks
            if pid is None:
                # The previous runner died between forking the shim and recording it.
                pid, ticks = pid_file_process(folder / SHIM_PID_FILE) or (None, None)
            task = self.store.get_task(attempt.task_id)
            if task is None:
                continue
            spec = self._spec_for(task.api_name)
            tracked = Tracked(
                attempt.task_id,
                attempt.n,
                task.api_name,
                pid,
                ticks,
                task_needs(spec) if spec else Resources(),
                child=False,
            )
            self.tracked[(attempt.task_id, attempt.n)] = tracked
            if not shim_alive(folder):
                tracked.exited = True
        self.collect()

    # --- one pass -------------------------------------------------------------------------------------

    def step(self) -> float:
        """Do everything due now; return how long to sleep at most."""
        self.reap()
        self.collect()
        at = now()
        self.store.time_out(at)
        self.deliver_stops()
        self.admit(at)
        upcoming = self.store.next_wakeup(at)
        sleep = MAX_SLEEP if upcoming is None else min(MAX_SLEEP, max(0.0, upcoming - now()))
        return sleep

    def reap(self) -> None:
        """Reap ended shim children (never SIG_IGN for SIGCHLD: the runner needs to know)."""
        by_pid = {t.pid: t for t in self.tracked.values() if t.child}
        while by_pid:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid in by_pid:
                by_pid[pid].exited = True

    def collect(self) -> None:
        """Record every attempt whose shim wrote its status or died."""
        for key, tracked in list(self.tracked.items()):
            folder = attempt_dir(self.state_dir, tracked.task_id, tracked.n)
            status = read_json(folder / STATUS_FILE)
            if status is None and not tracked.exited and not tracked.child:
                tracked.exited = not shim_alive(folder)
            if status is None and not tracked.exited:
                continue
            if status is None:
                # The shim may have written its status just before it died.
                status = read_json(folder / STATUS_FILE)
            del self.tracked[key]
            if status is None and not (folder / SHIM_PID_FILE).exists():
                # The shim writes its pid before it starts the task: without one the task never ran (the
                # previous runner died around the fork). Not a lost attempt: the task simply waits again.
                if self.store.undo_attempt(tracked.task_id, tracked.n):
                    log.info("task %s attempt %d never started; queued again", tracked.task_id, tracked.n)
                continue
            if status is None:
                leftovers = read_json(folder / TASK_FILE)
                if leftovers:
                    clean_leftovers(leftovers)
            self.finish(tracked, status)

    def finish(self, tracked: Tracked, status: dict[str, Any] | None) -> None:
        """Close an attempt and move its task on, as the state machine says."""
        task = self.store.get_task(tracked.task_id)
        if task is None or task.status is not TaskStatus.RUNNING or task.attempts != tracked.n:
            return
        spec = self._spec_for(task.api_name)
        outcome, message = _outcome(task, status)
        retries_allowed = spec.retry.attempts if spec else 0
        platform_error = bool((status or {}).get("platform_error"))
        decision = after_attempt(outcome, task.retries_used, retries_allowed, platform_error)
        ended_at = now()
        update: dict[str, Any] = {"status": decision.status.value, "retries_used": task.retries_used}
        if decision.status is TaskStatus.PENDING and spec is not None:
            if decision.counts_as_retry:
                update["retries_used"] = task.retries_used + 1
                delay = retry_delay(spec.retry, update["retries_used"])
                update["not_before"] = ended_at + delay
                update["message"] = (
                    f"retrying in {format_duration(delay)}, attempt {update['retries_used'] + 1} "
                    f"of {retries_allowed + 1}"
                )
            else:
                update["message"] = f"attempt {tracked.n} was {outcome.value}; starting a replacement"
        elif decision.status is TaskStatus.PENDING:
            # The API was deleted while this attempt ran: nothing to replace it with.
            update = {"status": TaskStatus.STOPPED.value, "retries_used": task.retries_used}
            update["message"] = "the API was deleted"
            update["ended_at"] = ended_at
        else:
            update["ended_at"] = ended_at
            update["message"] = message if decision.status is not TaskStatus.SUCCEEDED else None
        attempt = {
            "ended_at": (status or {}).get("ended_at", ended_at),
            "exit_code": (status or {}).get("exit_code"),
            "outcome": outcome.value,
            "message": message,
        }
        if self.store.end_attempt(task.id, tracked.n, attempt, update):
            log.info("task %s attempt %d: %s -> %s", task.id, tracked.n, outcome.value, update["status"])

    def deliver_stops(self) -> None:
        """SIGTERM the shims of running tasks asked to stop (by a user, a deadline or an API deletion)."""
        for task in self.store.running_tasks():
            if task.stop_reason is None:
                continue
            tracked = self.tracked.get((task.id, task.attempts))
            if tracked is None or tracked.term_sent or tracked.exited:
                continue
            if tracked.pid is None:
                # An adopted shim forked just before the previous runner died: its pid file comes soon.
                found = pid_file_process(attempt_dir(self.state_dir, task.id, task.attempts) / SHIM_PID_FILE)
                if found is None:
                    continue
                tracked.pid, tracked.ticks = found
            tracked.term_sent = True
            if tracked.pid is not None and (tracked.child or is_alive(tracked.pid, tracked.ticks)):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(tracked.pid, signal.SIGTERM)

    def admit(self, at: float) -> None:
        """Start pending tasks in FIFO order while capacity lasts, respecting max_concurrency."""
        used = Resources()
        per_api: dict[str, int] = {}
        for tracked in self.tracked.values():
            used = used + tracked.needs
            per_api[tracked.api_name] = per_api.get(tracked.api_name, 0) + 1
        free = self.capacity - used
        apis = {api.name: api for api in self.store.list_apis()}
        specs: dict[str, TaskAPISpec] = {}
        for name, api in apis.items():
            try:
                specs[name] = self.spec_of(api)
            except ValidationError as exc:
                log.error("API %s has an invalid stored spec: %s", name, exc)
        # APIs at max_concurrency are left out of the scan, so their queue cannot hide other APIs' tasks.
        saturated = [
            name
            for name, spec in specs.items()
            if spec.max_concurrency and per_api.get(name, 0) >= spec.max_concurrency
        ]
        for name in saturated:
            self._explain_api(name, f"waiting for max_concurrency ({per_api[name]} running)", at)
        for task in self.store.pending_ready(at, ADMISSION_SCAN, saturated):
            spec = specs.get(task.api_name)
            if task.api_name not in apis:
                self.store.request_stop(task.id)
                continue
            if spec is None:
                continue
            running = per_api.get(task.api_name, 0)
            if spec.max_concurrency and running >= spec.max_concurrency:
                self._explain(task, f"waiting for max_concurrency ({running} running)")
                continue
            needs = task_needs(spec)
            if not needs.fits_in(free):
                self._explain(task, _capacity_message(needs, free))
                # Strict FIFO: later, smaller tasks must not starve this one.
                return
            if self.start(task, spec, apis[task.api_name].driver, needs):
                free = free - needs
                per_api[task.api_name] = running + 1

    def _explain_api(self, api_name: str, message: str, at: float) -> None:
        # Written once per message, then only for tasks submitted since: not every pass for every task.
        newest = self.store.newest_pending_seq(api_name)
        last_message, last_seq = self._api_messages.get(api_name, ("", 0))
        if last_message != message or newest > last_seq:
            self.store.explain_pending(api_name, message, at, last_seq if last_message == message else 0)
            self._api_messages[api_name] = (message, newest)

    def _explain(self, task: TaskRow, message: str) -> None:
        if task.message != message:
            self.store.set_message(task.id, message)

    def start(self, task: TaskRow, spec: TaskAPISpec, driver: str, needs: Resources) -> bool:
        """Start the next attempt of a pending task under a new shim."""
        n = task.attempts + 1
        folder = attempt_dir(self.state_dir, task.id, n)
        folder.mkdir(parents=True, exist_ok=True)
        write_json_atomic(folder / JOB_FILE, task.record().model_dump(mode="json"))
        if not self.store.start_attempt(task.id, n, self.node):
            return False
        global_args, run_args = self.settings.runtime_args(driver) if driver != "process" else ([], [])
        launch = Launch(self.state_dir, task.id, task.api_name, n, spec, driver, tuple(global_args), tuple(run_args))
        try:
            pid = shim.spawn(launch)
        except OSError:
            # No shim (fork failed): the attempt is lost and replaced on the next pass.
            log.exception("cannot fork a shim for task %s attempt %d", task.id, n)
            self.tracked[(task.id, n)] = Tracked(task.id, n, task.api_name, None, None, needs, False, exited=True)
            return True
        ticks = start_ticks(pid)
        self.store.set_shim(task.id, n, pid, ticks or 0)
        self.tracked[(task.id, n)] = Tracked(task.id, n, task.api_name, pid, ticks, needs, child=True)
        log.info("task %s attempt %d started (shim %d, %s)", task.id, n, pid, driver)
        return True


def _outcome(task: TaskRow, status: dict[str, Any] | None) -> tuple[Outcome, str | None]:
    """How an attempt ended, from the shim's status (None: the shim died without one)."""
    if task.stop_reason in _STOP_OUTCOMES:
        outcome = _STOP_OUTCOMES[task.stop_reason]
        if outcome is Outcome.TIMED_OUT:
            return outcome, f"timed out after {task.timeout}s"
        return outcome, task.message or "stopped on request"
    if status is None:
        return Outcome.LOST, "the shim died without reporting how the task ended"
    if status.get("oom"):
        return Outcome.OOM, "out of memory"
    code = status.get("exit_code")
    if code == 0:
        return Outcome.SUCCEEDED, None
    detail = status.get("message")
    text = f"exit code {code}"
    if status.get("signal"):
        text += f" (signal {status['signal']})"
    return Outcome.FAILED, f"{text}: {detail}" if detail else text


def _capacity_message(needs: Resources, free: Resources) -> str:
    parts = []
    if needs.millicores > free.millicores:
        parts.append(f"{needs.millicores}m CPU, {max(free.millicores, 0)}m free")
    if needs.memory > free.memory:
        parts.append(f"{needs.memory // 2**20}Mi memory, {max(free.memory, 0) // 2**20}Mi free")
    if needs.gpus > free.gpus:
        parts.append(f"{needs.gpus} GPU, {max(free.gpus, 0)} free")
    return "waiting for capacity: needs " + "; ".join(parts)


def _acquire_lock(state_dir: Path) -> int:
    fd = os.open(state_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        # lockf (POSIX) rather than flock: forked shims must not inherit the lock.
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        holder = (state_dir / PID_NAME).read_text().strip() if (state_dir / PID_NAME).exists() else "?"
        raise RunnerAlreadyRunning(
            f"another runner (pid {holder}) already serves the state directory {state_dir}"
        ) from None
    return fd


def run(settings: Settings) -> None:
    """Run the runner until SIGTERM or SIGINT (blocking); raise RunnerAlreadyRunning if one runs."""
    state_dir = settings.state_dir
    state_dir.mkdir(parents=True, exist_ok=True)
    lock_fd = _acquire_lock(state_dir)
    pid_file = state_dir / PID_NAME
    write_pid_file(pid_file)
    store = Store(state_dir / DB_NAME)
    listener = Listener(state_dir)
    # Signals wake the selector through this pipe; the handlers only set a flag.
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    stopping: list[int] = []

    def _on_signal(signum: int, _frame: object) -> None:
        stopping.append(signum)

    old_wakeup = signal.set_wakeup_fd(wake_w)
    old_handlers = {s: signal.signal(s, _on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    selector.register(wake_r, selectors.EVENT_READ)
    runner = Runner(settings, store, total_capacity(settings))
    log.info("runner %d started on %s: capacity %s", os.getpid(), state_dir, runner.capacity.describe())
    try:
        runner.adopt()
        while not stopping:
            try:
                timeout = runner.step()
            except (sqlite3.Error, OSError):
                # A locked database or a full disk must not kill the runner (and orphan its bookkeeping);
                # the next pass retries.
                log.exception("runner pass failed; retrying")
                timeout = MAX_SLEEP
            if stopping:
                break
            selector.select(timeout)
            listener.drain()
            with contextlib.suppress(BlockingIOError):
                os.read(wake_r, 512)
    finally:
        log.info("runner %d stopping; %d shims keep running", os.getpid(), len(runner.tracked))
        selector.close()
        listener.close()
        signal.set_wakeup_fd(old_wakeup)
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)
        os.close(wake_r)
        os.close(wake_w)
        with contextlib.suppress(FileNotFoundError):
            pid_file.unlink()
        os.close(lock_fd)


def main() -> None:
    """Entry point of ``python -m gateway.backends.local.runner``."""
    settings = Settings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        run(settings)
    except RunnerAlreadyRunning as exc:
        print(f"taskapi runner: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
