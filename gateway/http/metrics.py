"""Prometheus metrics, correct across several gunicorn workers (prometheus-client multiprocess mode)."""

from __future__ import annotations

import os
from collections.abc import Iterator

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from gateway.backends.base import Backend

REQUESTS = Counter("taskapi_http_requests_total", "HTTP requests answered.", ["method", "route", "status"])
LATENCY = Histogram(
    "taskapi_http_request_duration_seconds",
    "Time to answer an HTTP request.",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
)
SUBMITTED = Counter("taskapi_tasks_submitted_total", "Tasks accepted.", ["api"])


class BackendCollector(Collector):
    """Gauges read from the backend at scrape time, so every worker answers the same."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Yield ``taskapi_tasks`` and ``taskapi_api_node_group``."""
        tasks = GaugeMetricFamily("taskapi_tasks", "Tasks known to the backend.", labels=["api", "status"])
        for (api, status), count in sorted(self._backend.status_counts().items()):
            tasks.add_metric([api, status], count)
        yield tasks
        # The autoscaler joins Nomad's job summaries (which carry no pool) with this to scale each pool.
        groups = GaugeMetricFamily(
            "taskapi_api_node_group", "1 for each node group a Task API may run in.", labels=["api", "node_group"]
        )
        for info in self._backend.list_apis():
            for group in info.spec.get("node_groups") or ():
                groups.add_metric([info.name, group], 1)
        yield groups


class _ThisProcess(Collector):
    """The default registry's metrics, for a gateway run outside gunicorn's multiprocess mode."""

    def collect(self) -> Iterator[Metric]:
        """Yield this process's metrics."""
        yield from REGISTRY.collect()


def render(backend: Backend) -> bytes:
    """The metrics page: per-process metrics merged over workers, plus the task gauge."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)
    else:
        registry.register(_ThisProcess())
    registry.register(BackendCollector(backend))
    return generate_latest(registry)
