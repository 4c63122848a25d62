"""Where the local backend keeps things in its state directory, and how it reads /proc."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import Any

DB_NAME = "state.db"
LOCK_NAME = "runner.lock"
PID_NAME = "runner.pid"
JOB_FILE = "job.json"
STATUS_FILE = "status.json"
TASK_FILE = "task.json"
SHIM_PID_FILE = "shim.pid"
SHIM_LOCK_FILE = "shim.lock"
LOG_STREAMS = ("stdout", "stderr")


def attempt_dir(state_dir: Path, task_id: str, n: int) -> Path:
    """The folder of attempt ``n`` of a task."""
    return state_dir / "attempts" / task_id / str(n)


def start_ticks(pid: int) -> int | None:
    """When ``pid`` started (field 22 of /proc/<pid>/stat), or None if there is no such process.

    Pairing a pid with its start time tells a live process from a later one that reused the pid.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            text = stat.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses; fields after it are plain.
    fields = text.rsplit(b")", 1)[1].split()
    if fields[0] == b"Z":
        return None
    return int(fields[19])


def is_alive(pid: int | None, ticks: int | None) -> bool:
    """Whether process ``pid`` still runs and is the one that started at ``ticks``."""
    return pid is not None and ticks is not None and start_ticks(pid) == ticks


def _boot_time() -> float:
    with open("/proc/stat") as stat:
        for line in stat:
            if line.startswith("btime "):
                return float(line.split()[1])
    raise RuntimeError("btime missing from /proc/stat")


def lock_for_shim(folder: Path) -> int:
    """A descriptor holding an exclusive lock on the attempt's ``shim.lock``, to hand to the shim at fork.

    The runner takes the lock BEFORE forking and the shim inherits it, so there is no moment in which a live
    shim does not hold it: a runner killed right after the fork cannot make its successor think the new shim
    dead (and run the task twice). The kernel drops the lock when the shim exits, however it exits.
    """
    fd = os.open(folder / SHIM_LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def shim_alive(folder: Path) -> bool:
    """Whether the attempt's shim still runs: it holds the lock on ``shim.lock`` for as long as it lives."""
    try:
        fd = os.open(folder / SHIM_LOCK_FILE, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def write_pid_file(path: Path) -> None:
    """Record this process's pid (the file's own time tells this process from a later one with its pid)."""
    path.write_text(f"{os.getpid()}\n")


def pid_file_process(path: Path) -> tuple[int, int] | None:
    """The (pid, start ticks) of the live process a pid file names, or None.

    A pid file is written just after its process starts, so a process with that pid that started after
    the file was written is a stranger that reused the pid (one second of slack: btime has whole seconds).
    """
    try:
        pid = int(path.read_text().strip())
        written = path.stat().st_mtime
    except (OSError, ValueError):
        return None
    ticks = start_ticks(pid)
    if ticks is None:
        return None
    started = _boot_time() + ticks / os.sysconf("SC_CLK_TCK")
    return (pid, ticks) if started <= written + 1.0 else None


def write_json_atomic(path: Path, document: dict[str, Any]) -> None:
    """Write JSON so that readers see either nothing or the whole file, even after a crash."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as out:
        json.dump(document, out)
        out.flush()
        os.fsync(out.fileno())
    os.rename(tmp, path)


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON file's content, or None if it does not exist."""
    try:
        with open(path) as source:
            return json.load(source)
    except FileNotFoundError:
        return None
