"""The process ``taskapi serve`` becomes: it runs gunicorn and, with the local backend, exactly one runner.

It restarts the runner if it dies (tasks keep running under their shims and are re-adopted); if gunicorn
exits, everything stops. Everything it needs arrives as ``TASKAPI_*`` environment variables, already
checked by ``gateway.server``. It imports only the standard library, to stay small at idle.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

log = logging.getLogger("taskapi.serve")
RUNNER_RESTART_DELAY = 1.0


class SupervisorError(RuntimeError):
    """The gateway cannot start; the message says why."""


def lock_state_dir(state_dir: Path) -> IO[bytes]:
    """Hold ``serve.lock`` for the life of this process: one ``serve`` per state directory."""
    lock = open(state_dir / "serve.lock", "ab")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise SupervisorError(f"another 'taskapi serve' is already using {state_dir}") from None
    return lock


def gunicorn_command(env: dict[str, str]) -> list[str]:
    """The gunicorn command line for the gateway."""
    host = env["TASKAPI_HOST"]
    bind = f"[{host}]:{env['TASKAPI_PORT']}" if ":" in host else f"{host}:{env['TASKAPI_PORT']}"
    return [
        sys.executable, "-m", "gunicorn",
        "--config", "python:gateway.gunicorn_conf",
        "--bind", bind,
        "--workers", env["TASKAPI_WORKERS"],
        "--threads", env["TASKAPI_THREADS"],
        "--log-level", env["TASKAPI_LOG_LEVEL"],
        "gateway.wsgi:app",
    ]  # fmt: skip


def supervise(env: dict[str, str]) -> int:
    """Run gunicorn (and the runner) until SIGTERM/SIGINT or until gunicorn exits; gunicorn's exit code."""
    state_dir = Path(env["TASKAPI_STATE_DIR"])
    lock = lock_state_dir(state_dir)
    # The multiprocess metrics of a previous run would be merged into this one's: start empty.
    metrics_dir = Path(env["PROMETHEUS_MULTIPROC_DIR"])
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    (state_dir / "serve.pid").write_text(str(os.getpid()))
    gateway = subprocess.Popen(gunicorn_command(env), env=env)
    (state_dir / "gateway.pid").write_text(str(gateway.pid))
    runner: subprocess.Popen[bytes] | None = None
    runner_started = 0.0
    local = env.get("TASKAPI_BACKEND", "local") == "local"
    try:
        while not stopping:
            if local and (runner is None or runner.poll() is not None):
                if runner is not None:
                    log.warning("runner exited with %s; restarting it", runner.returncode)
                    time.sleep(max(0.0, RUNNER_RESTART_DELAY - (time.monotonic() - runner_started)))
                runner = subprocess.Popen([sys.executable, "-m", "gateway.backends.local.runner"], env=env)
                runner_started = time.monotonic()
            try:
                code = gateway.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                continue
            log.error("gunicorn exited with %s", code)
            return code or 1
        return 0
    finally:
        for child in (gateway, runner):
            if child is not None and child.poll() is None:
                child.terminate()
        for child in (gateway, runner):
            if child is not None:
                try:
                    child.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    child.kill()
        for name in ("serve.pid", "gateway.pid"):
            (state_dir / name).unlink(missing_ok=True)
        lock.close()


def main() -> None:
    """Entry point of ``python -m gateway.supervisor``."""
    env = dict(os.environ)
    logging.basicConfig(level=env.get("TASKAPI_LOG_LEVEL", "info").upper(),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")  # fmt: skip
    try:
        sys.exit(supervise(env))
    except SupervisorError as exc:
        log.error("%s", exc)
        sys.exit(1)


if __name__ == "__main__":
    main()
