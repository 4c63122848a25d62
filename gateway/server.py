"""``taskapi serve``: gunicorn plus, with the local backend, exactly one runner, supervised together.

The runner is restarted if it dies (tasks keep running under their shims and are re-adopted); if gunicorn
exits, everything stops. Settings reach both children as ``TASKAPI_*`` environment variables.
"""

from __future__ import annotations

import fcntl
import ipaddress
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

from gateway.config import Settings

log = logging.getLogger("taskapi.serve")
RUNNER_RESTART_DELAY = 1.0


class ServeError(RuntimeError):
    """The gateway refuses to start; the message says why."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or address) only listens on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return all(ipaddress.ip_address(a[4][0]).is_loopback for a in socket.getaddrinfo(host, None))
        except OSError:
            return False


def check_binding(settings: Settings) -> None:
    """Refuse to serve beyond loopback without keys unless told ``--insecure``."""
    if settings.keys():
        return
    if is_loopback(settings.host):
        log.warning("no API keys configured: serving on loopback (%s) only", settings.host)
        return
    if not settings.insecure:
        raise ServeError(
            f"refusing to serve on {settings.host} without API keys: set TASKAPI_API_KEYS or "
            "TASKAPI_API_KEYS_FILE, bind to 127.0.0.1, or pass --insecure"
        )
    log.warning("serving on %s WITHOUT authentication (--insecure)", settings.host)


def child_env(settings: Settings) -> dict[str, str]:
    """The environment of the gunicorn and runner processes."""
    env = dict(os.environ)
    for name, value in settings.model_dump(exclude_none=True).items():
        env[f"TASKAPI_{name.upper()}"] = str(value)
    metrics_dir = settings.state_dir / "metrics"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    return env


def _lock_state_dir(state_dir: Path) -> IO[bytes]:
    """Hold ``serve.lock`` for the life of this process: one ``serve`` per state directory."""
    lock = open(state_dir / "serve.lock", "ab")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise ServeError(f"another 'taskapi serve' is already using {state_dir}") from None
    return lock


def gunicorn_command(settings: Settings) -> list[str]:
    """The gunicorn command line for the gateway."""
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    return [
        sys.executable, "-m", "gunicorn",
        "--config", "python:gateway.gunicorn_conf",
        "--bind", f"{host}:{settings.port}",
        "--workers", str(settings.workers),
        "--threads", str(settings.threads),
        "--worker-class", "gthread",
        "--log-level", settings.log_level,
        "--graceful-timeout", "10",
        "--timeout", "0",
        "--limit-request-line", "8190",
        "--keep-alive", "75",
        "gateway.wsgi:app",
    ]  # fmt: skip


def runner_command() -> list[str]:
    """The local runner's command line."""
    return [sys.executable, "-m", "gateway.backends.local.runner"]


def serve(settings: Settings) -> int:
    """Run the gateway (and the local runner) until SIGTERM/SIGINT or until gunicorn exits."""
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    check_binding(settings)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    lock = _lock_state_dir(settings.state_dir)
    env = child_env(settings)
    (settings.state_dir / "serve.pid").write_text(str(os.getpid()))
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    gateway = subprocess.Popen(gunicorn_command(settings), env=env)
    (settings.state_dir / "gateway.pid").write_text(str(gateway.pid))
    runner: subprocess.Popen[bytes] | None = None
    runner_started = 0.0
    local = settings.backend == "local"
    log.info("gateway on http://%s:%d (backend %s, state %s)", settings.host, settings.port, settings.backend,
             settings.state_dir)
    try:
        while not stopping:
            if local and (runner is None or runner.poll() is not None):
                if runner is not None:
                    log.warning("runner exited with %s; restarting it", runner.returncode)
                    time.sleep(max(0.0, RUNNER_RESTART_DELAY - (time.monotonic() - runner_started)))
                runner = subprocess.Popen(runner_command(), env=env)
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
            (settings.state_dir / name).unlink(missing_ok=True)
        lock.close()
