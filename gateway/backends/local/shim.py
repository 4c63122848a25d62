"""The per-attempt shim, like Nomad's executor: it runs one task and writes its exit status to disk.

The runner forks it (no new interpreter, so starting an attempt is cheap). The shim starts its own
session, so it outlives the runner and ignores terminal signals; the runner may die and come back while
the shim keeps running, then read ``status.json`` or find the shim still alive.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import traceback
from pathlib import Path
from types import FrameType
from typing import IO

from .drivers import Driver, ExitStatus, Launch, make_driver
from .layout import SHIM_PID_FILE, STATUS_FILE, TASK_FILE, lock_for_shim, write_json_atomic, write_pid_file
from .notify import wake_once

# How often the shim re-checks while stopping: retries a stop that could not be delivered yet, and
# escalates to SIGKILL once the kill timeout has passed.
STOP_TICK = 0.5


def spawn(launch: Launch) -> int:
    """Fork a shim for ``launch`` and return its pid (call from a single-threaded process).

    The shim inherits a lock on its attempt's ``shim.lock`` taken before the fork (see ``lock_for_shim``).
    """
    # SIGTERM stays blocked across the fork so that a stop sent at once cannot kill the shim before it
    # has installed its handler.
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    lock = lock_for_shim(launch.dir)
    try:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                Shim(launch, lock).run()
                code = 0
            except BaseException:
                # Lands in shim.log; the runner will see an attempt without status and replace it.
                traceback.print_exc()
            finally:
                os._exit(code)
    finally:
        os.close(lock)  # the parent's copy; the child's keeps the lock
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
    return pid


class Shim:
    """One attempt's supervisor, inside the forked child."""

    def __init__(self, launch: Launch, lock: int) -> None:
        self.launch = launch
        self.lock = lock
        self.driver: Driver | None = None
        self.stop_since: float | None = None
        self.term_delivered = False
        self.killed = False

    def _detach(self) -> None:
        os.setsid()
        # The runner's signal wake-up pipe is inherited: Python would write a byte to that descriptor
        # number on every signal, and it is about to be closed and reused for the task's files.
        signal.set_wakeup_fd(-1)
        # Whatever the shim starts works in the attempt folder (conmon, for one, drops an 'oom' marker in
        # its working directory); nothing lands in the runner's.
        os.chdir(self.launch.dir)
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGALRM, self._on_tick)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        devnull = os.open(os.devnull, os.O_RDONLY)
        log = os.open(self.launch.dir / "shim.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(devnull, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        # The runner's database, lock, socket and selector descriptors are not the shim's business.
        for name in os.listdir("/proc/self/fd"):
            fd = int(name)
            if fd > 2 and fd != self.lock:
                with contextlib.suppress(OSError):
                    os.close(fd)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})

    def _on_term(self, _signum: int, _frame: FrameType | None) -> None:
        if self.stop_since is None:
            self.stop_since = time.monotonic()
            self._deliver_term()
            signal.setitimer(signal.ITIMER_REAL, STOP_TICK, STOP_TICK)

    def _deliver_term(self) -> None:
        if self.driver is not None and not self.term_delivered:
            self.term_delivered = self.driver.signal(signal.SIGTERM)

    def _on_tick(self, _signum: int, _frame: FrameType | None) -> None:
        if self.stop_since is None or self.driver is None:
            return
        if time.monotonic() - self.stop_since >= self.launch.spec.kill_timeout_seconds:
            self.killed = self.driver.signal(signal.SIGKILL) or self.killed
        else:
            self._deliver_term()

    def run(self) -> None:
        """Run the task to its end, write status.json, wake the runner."""
        self._detach()
        folder = self.launch.dir
        write_pid_file(folder / SHIM_PID_FILE)
        started_at = time.time()
        status = self._supervise(folder)
        write_json_atomic(
            folder / STATUS_FILE,
            {
                "exit_code": status.exit_code,
                "signal": status.signal,
                "oom": status.oom,
                "message": status.message,
                "platform_error": status.platform_error,
                "started_at": started_at,
                "ended_at": time.time(),
            },
        )
        wake_once(self.launch.state_dir)

    def _supervise(self, folder: Path) -> ExitStatus:
        stdout: IO[bytes]
        with open(folder / "stdout", "ab") as stdout, open(folder / "stderr", "ab") as stderr:
            try:
                driver = make_driver(self.launch)
                write_json_atomic(folder / TASK_FILE, driver.leftovers())
                proc = driver.start(stdout, stderr)
            except (OSError, subprocess.SubprocessError) as exc:
                # Reported as a failed attempt (not a lost one), so a task that cannot start is not retried
                # beyond its retry policy.
                stderr.write(f"taskapi: cannot start the task: {exc}\n".encode())
                return ExitStatus(127, None, False, f"cannot start the task: {exc}")
            self.driver = driver
            write_json_atomic(folder / TASK_FILE, driver.leftovers())
            if self.stop_since is not None:
                # A stop arrived while the task was starting.
                self._deliver_term()
            returncode = proc.wait()
        # The task is gone: later stop requests and ticks have nothing left to do.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.setitimer(signal.ITIMER_REAL, 0)
        try:
            return driver.finish(returncode)
        except (OSError, subprocess.SubprocessError, ValueError) as exc:
            code = 128 - returncode if returncode < 0 else returncode
            return ExitStatus(code, -returncode if returncode < 0 else None, False, f"exit status incomplete: {exc}")
