"""Prometheus metrics, correct across several gunicorn workers (prometheus-client multiprocess mode)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

REQUESTS = Counter("taskapi_http_requests_total", "HTTP requests answered.", ["method", "route", "status"])
LATENCY = Histogram(
    "taskapi_http_request_duration_seconds",
    "Time to answer an HTTP request.",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
)
SUBMITTED = Counter("taskapi_tasks_submitted_total", "Tasks accepted.", ["api"])


class TaskCollector(Collector):
    """Tasks per API and status, read from the backend at scrape time so every worker agrees."""

    def __init__(self, counts: Callable[[], dict[tuple[str, str], int]]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Yield the ``taskapi_tasks`` gauge."""
        family = GaugeMetricFamily("taskapi_tasks", "Tasks known to the backend.", labels=["api", "status"])
        for (api, status), count in sorted(self._counts().items()):
            family.add_metric([api, status], count)
        yield family


class _ThisProcess(Collector):
    """The default registry's metrics, for a gateway run outside gunicorn's multiprocess mode."""

    def collect(self) -> Iterator[Metric]:
        """Yield this process's metrics."""
        yield from REGISTRY.collect()


def render(counts: Callable[[], dict[tuple[str, str], int]]) -> bytes:
    """The metrics page: per-process metrics merged over workers, plus the task gauge."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)
    else:
        registry.register(_ThisProcess())
    registry.register(TaskCollector(counts))
    return generate_latest(registry)
