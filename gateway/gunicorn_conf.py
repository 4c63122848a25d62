"""Gunicorn hooks the gateway needs."""

from typing import Any

from prometheus_client import multiprocess


def child_exit(server: Any, worker: Any) -> None:
    """Drop a dead worker's live gauges from the merged metrics."""
    multiprocess.mark_process_dead(worker.pid)
