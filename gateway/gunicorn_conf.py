"""Gunicorn settings and hooks the gateway needs."""

from typing import Any

from prometheus_client import multiprocess

# Load the app once in the master: the workers share its pages, which keeps the gateway small at idle.
preload_app = True
worker_class = "gthread"
# Above the ALB's default 60 s idle timeout, so the balancer never reuses a connection gunicorn closed.
keepalive = 75
# Streaming logs with follow keeps a request open for as long as the task runs.
timeout = 0
graceful_timeout = 10
limit_request_line = 8190


def child_exit(server: Any, worker: Any) -> None:
    """Drop a dead worker's live gauges from the merged metrics."""
    multiprocess.mark_process_dead(worker.pid)
