"""``taskapi serve``: gunicorn plus, with the local backend, exactly one runner, supervised together.

Settings are checked here and handed on as ``TASKAPI_*`` environment variables to ``gateway.supervisor``,
which this process becomes.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import sys
from typing import NoReturn

from gateway.config import Settings

log = logging.getLogger("taskapi.serve")


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
    # Emptied by the supervisor once it holds the state directory's lock, never by a serve that will be refused.
    env["PROMETHEUS_MULTIPROC_DIR"] = str(settings.state_dir / "metrics")
    return env


def serve(settings: Settings) -> NoReturn:
    """Check the settings, then become the supervisor of gunicorn and the runner (never returns on success)."""
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    check_binding(settings)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    env = child_env(settings)
    log.info(
        "gateway on http://%s:%d (backend %s, state %s)",
        settings.host, settings.port, settings.backend, settings.state_dir,
    )  # fmt: skip
    # exec: the long-lived supervisor should not carry the CLI's imports.
    os.execve(sys.executable, [sys.executable, "-m", "gateway.supervisor"], env)
