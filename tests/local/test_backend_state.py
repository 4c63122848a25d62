"""Deploy checks, readiness, and the database's behaviour at scale (no runner needed)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.backends.base import Conflict, NotFound, Unavailable, Unprocessable
from gateway.backends.local.backend import LocalBackend
from gateway.config import Settings
from gateway.spec import validate_spec
from gateway.task_states import TaskStatus


def _spec(name: str = "api", **extra: object) -> dict:
    container = {"name": "main", "command": ["true"]}
    for key in ("image", "compute"):
        if key in extra:
            container[key] = extra.pop(key)
    return {"name": name, "kind": "TaskAPI", "pod": {"containers": [container]}, **extra}


@pytest.fixture
def backend(tmp_path: Path) -> LocalBackend:
    return LocalBackend(Settings(state_dir=tmp_path / "s", cpus=4, memory="4Gi", gpus=0))


def test_deploy_refuses_what_the_host_cannot_run(backend: LocalBackend) -> None:
    with pytest.raises(Unprocessable, match="needs 1 GPU"):
        backend.deploy(validate_spec(_spec(driver="process", compute={"gpu": 1})))
    with pytest.raises(Unprocessable, match="needs 8000m CPU"):
        backend.deploy(validate_spec(_spec(driver="process", compute={"cpu": 8})))
    with pytest.raises(Unprocessable, match="needs 8192Mi memory"):
        backend.deploy(validate_spec(_spec(driver="process", compute={"mem": "8Gi"})))
    two = _spec(driver="process")
    two["pod"]["containers"].append({"name": "side", "command": ["true"]})
    with pytest.raises(Unprocessable, match="one container per task"):
        backend.deploy(validate_spec(two))


def test_deploy_refuses_an_unreachable_runtime(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path / "s", docker_args="-H unix:///nonexistent/docker.sock")
    with pytest.raises(Unprocessable, match="docker"):
        LocalBackend(settings).deploy(validate_spec(_spec(driver="docker", image="busybox")))


def test_default_driver_needs_a_runtime(backend: LocalBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(Unprocessable, match="driver: process"):
        backend.deploy(validate_spec(_spec()))
    info = backend.deploy(validate_spec(_spec(driver="process")))
    assert info.spec["driver"] == "process"


def test_default_driver_is_a_container_runtime(backend: LocalBackend, test_image: str) -> None:
    with pytest.raises(Unprocessable, match="image is required"):
        backend.deploy(validate_spec(_spec()))
    info = backend.deploy(validate_spec(_spec(image=test_image)))
    assert info.spec["driver"] in ("podman", "docker")
    assert info.created_at.endswith("Z")


def test_apis(backend: LocalBackend) -> None:
    backend.deploy(validate_spec(_spec("one", driver="process", networking={"endpoint": "shared"})))
    with pytest.raises(Conflict, match="already served"):
        backend.deploy(validate_spec(_spec("two", driver="process", networking={"endpoint": "shared"})))
    assert backend.api_for_endpoint("shared").name == "one"
    assert [a.name for a in backend.list_apis()] == ["one"]
    backend.delete_api("one")
    with pytest.raises(NotFound):
        backend.delete_api("one")
    with pytest.raises(NotFound):
        backend.api_for_endpoint("shared")


def test_not_ready_without_runner(backend: LocalBackend) -> None:
    with pytest.raises(Unavailable, match="runner is not running"):
        backend.check_ready()


def test_cursor_validation(backend: LocalBackend) -> None:
    with pytest.raises(Unprocessable):
        backend.list_tasks("api", None, 10, "abc")


def _seed(backend: LocalBackend, start: int, count: int) -> None:
    """Insert finished tasks ``start`` to ``start + count`` over two APIs straight into the database."""
    rows = [
        (f"{i:016x}", "big" if i % 2 else "other", "succeeded" if i % 3 else "worker_error", "{}", 60, i, i + 60)
        for i in range(start, start + count)
    ]
    with backend.store.write() as conn:
        conn.executemany(
            "INSERT INTO tasks (id, api_name, status, config, timeout, submitted_at, deadline) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )


def _p50(call: Callable[[], object], repeat: int = 200) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def test_queries_use_indexes(backend: LocalBackend) -> None:
    conn = backend.store.conn
    plans = {
        "get": "SELECT * FROM tasks WHERE id = 'x'",
        "page": "SELECT * FROM tasks WHERE api_name = 'a' AND seq < 5 ORDER BY seq DESC LIMIT 10",
        "status page": "SELECT * FROM tasks WHERE api_name = 'a' AND status = 'pending' ORDER BY seq DESC LIMIT 10",
        "fifo": "SELECT * FROM tasks WHERE status = 'pending' AND not_before <= 1 ORDER BY seq LIMIT 10",
        "running": "SELECT * FROM tasks WHERE status = 'running' ORDER BY seq",
    }
    for name, sql in plans.items():
        plan = " | ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}"))
        # An index search or an index-ordered scan, never a full scan or a sort.
        assert "TEMP B-TREE" not in plan and ("SEARCH" in plan or "INDEX" in plan), f"{name}: {plan}"


def test_reads_stay_fast_at_100k_tasks(backend: LocalBackend) -> None:
    _seed(backend, 0, 1_000)
    small_page = _p50(lambda: backend.list_tasks("big", TaskStatus.SUCCEEDED, 50, None), 50)
    small_deep = _p50(lambda: backend.list_tasks("big", None, 50, "501"), 50)
    _seed(backend, 1_000, 99_000)
    assert _p50(lambda: backend.get_task("big", f"{77_777:016x}")) <= 0.003
    big_page = _p50(lambda: backend.list_tasks("big", TaskStatus.SUCCEEDED, 50, None), 50)
    big_deep = _p50(lambda: backend.list_tasks("big", None, 50, "50001"), 50)
    # A page costs the same whatever the table size (bounded by the page, not the tasks); the slack
    # absorbs timer noise on a busy machine.
    assert big_page <= max(small_page * 3, 0.005)
    assert big_deep <= max(small_deep * 3, 0.005)
