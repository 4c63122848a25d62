"""The reconciler against the double: deadlines, re-placement after a drain, archiving, the blocking loop."""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.backends.nomad.archive import open_archive
from gateway.backends.nomad.reconciler import Reconciler
from gateway.config import Settings
from gateway.models import JobStatus
from tests.conftest import wait_for
from tests.nomad.conftest import NomadGateway, container_spec
from tests.nomad_double import NomadDouble


class RecordingArchive:
    """The archive port as the reconciler uses it: records what it was given."""

    def __init__(self) -> None:
        self.puts: list[tuple[str, JobStatus, dict[tuple[int, str], Any]]] = []

    def put(self, api: str, job: JobStatus, logs: dict[tuple[int, str], Any]) -> None:
        self.puts.append((api, job, logs))

    def has(self, api: str, task_id: str) -> bool:
        return any(a == api and job.job_id == task_id for a, job, _ in self.puts)


@pytest.fixture(autouse=True)
def no_real_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    """A real cluster's NOMAD_* variables (python-nomad reads them too) must not reach the double."""
    for name in [n for n in os.environ if n.startswith("NOMAD_")]:
        monkeypatch.delenv(name)


@pytest.fixture
def real_nomad() -> Iterator[NomadDouble]:
    """A double on the wall clock, so that its stop times compare with the gateway's deadlines."""
    with NomadDouble(real_clock=True) as double:
        double.add_node("cpu-1", pool="cpu-spot", node_class="cpu-spot")
        yield double


@pytest.fixture
def gw1(real_nomad: NomadDouble, make_nomad_gateway: Callable[..., NomadGateway]) -> NomadGateway:
    return make_nomad_gateway(real_nomad, workers=1)


def reconciler(nomad: NomadDouble, archive: RecordingArchive | None = None) -> Reconciler:
    return Reconciler(Settings(backend="nomad", nomad_addr=nomad.address), archive)  # type: ignore[arg-type]


def test_deadline_stops_a_running_task_as_timed_out(gw1: NomadGateway, real_nomad: NomadDouble) -> None:
    gw1.deploy(container_spec("late", timeout=1))
    task_id = gw1.submit("late")
    alloc = gw1.place("late", task_id)
    assert alloc is not None
    real_nomad.start(alloc)
    early = reconciler(real_nomad).reconcile()
    assert early.timed_out == [] and early.next_deadline is not None
    time.sleep(max(0.0, early.next_deadline - time.time()) + 0.05)
    assert reconciler(real_nomad).reconcile().timed_out == [task_id]
    task = gw1.task("late", task_id)
    assert task["status"] == "timed_out"
    assert [a["outcome"] for a in task["attempts"]] == ["timed_out"]
    assert reconciler(real_nomad).reconcile().timed_out == []  # nothing left to do: idempotent


def test_deadline_of_a_task_that_never_got_capacity(gw1: NomadGateway, real_nomad: NomadDouble) -> None:
    gw1.deploy(container_spec("starved", timeout=1, node_groups=["empty-pool"]))
    task_id = gw1.submit("starved")
    assert gw1.place("starved", task_id) is None
    time.sleep(1.05)
    assert reconciler(real_nomad).reconcile().timed_out == [task_id]
    task = gw1.task("starved", task_id)
    assert task["status"] == "timed_out" and task["attempts"] == [] and task["end_time"]


def test_user_stop_before_the_deadline_stays_stopped(gw1: NomadGateway, real_nomad: NomadDouble) -> None:
    gw1.deploy(container_spec("quit", timeout=1))
    task_id = gw1.submit("quit")
    assert gw1("DELETE", f"/quit?jobID={task_id}").status_code == 200
    time.sleep(1.05)
    assert gw1.task("quit", task_id)["status"] == "stopped"


def test_drained_attempt_is_dispatched_again(gw1: NomadGateway, real_nomad: NomadDouble) -> None:
    gw1.deploy(container_spec("drained", node_groups=["batch"]))
    node = real_nomad.add_node("batch-1", pool="batch")
    task_id = gw1.submit("drained")
    alloc = gw1.place("drained", task_id)
    assert alloc is not None
    real_nomad.start(alloc)
    real_nomad.drain_node(node, deadline_s=10)
    real_nomad.advance(10)  # the drain deadline kills the batch allocation; Nomad places no replacement
    task = gw1.task("drained", task_id)
    assert task["status"] == "pending" and task["attempts"][0]["outcome"] == "preempted"
    children = reconciler(real_nomad).nomad.list_jobs("taskapi-drained/", filter_='ParentID != ""')[0]
    # Two reconcilers acting on the same view: the idempotency token makes one new child, not two.
    assert reconciler(real_nomad).reconcile(children).replaced == [task_id]
    assert reconciler(real_nomad).reconcile(children).replaced == [task_id]
    assert len(real_nomad.children("taskapi-drained")) == 2
    real_nomad.add_node("batch-2", pool="batch")
    newest = real_nomad.children("taskapi-drained")[-1]
    second = real_nomad.place(newest)
    assert second is not None
    real_nomad.start(second)
    real_nomad.finish(second, stdout=b"done\n")
    task = gw1.task("drained", task_id)
    assert task["status"] == "succeeded"
    assert [(a["attempt"], a["outcome"]) for a in task["attempts"]] == [(1, "preempted"), (2, "succeeded")]
    assert gw1("GET", f"/v1/apis/drained/tasks/{task_id}/logs?attempt=2").text == "done\n"
    listed = gw1("GET", "/v1/apis/drained/tasks").json()["tasks"]
    assert [t["job_id"] for t in listed] == [task_id] and listed[0]["status"] == "succeeded"


def test_finished_tasks_are_archived_once(gw1: NomadGateway, real_nomad: NomadDouble) -> None:
    gw1.deploy(container_spec("kept", retry={"attempts": 1}))
    task_id = gw1.submit("kept", {"k": "v"})
    first = gw1.place("kept", task_id)
    assert first is not None
    real_nomad.start(first)
    real_nomad.finish(first, exit_code=1, stderr=b"boom\n")
    real_nomad.advance(5)
    second = real_nomad.latest_alloc(gw1.child("kept", task_id))
    assert second is not None and second != first
    real_nomad.start(second)
    archive = RecordingArchive()
    worker = reconciler(real_nomad, archive)
    assert worker.reconcile().archived == []  # still running
    real_nomad.finish(second, stdout=b"ok\n")
    assert worker.reconcile().archived == [task_id]
    assert worker.reconcile().archived == []
    assert reconciler(real_nomad, archive).reconcile().archived == []  # a second reconciler finds it archived
    ((api, job, logs),) = archive.puts
    assert api == "kept" and job.status.value == "succeeded" and job.config == {"k": "v"}
    assert logs == {(1, "stdout"): b"", (1, "stderr"): b"boom\n", (2, "stdout"): b"ok\n", (2, "stderr"): b""}


def test_run_follows_changes_with_blocking_queries(gw1: NomadGateway, real_nomad: NomadDouble) -> None:
    gw1.deploy(container_spec("watched"))
    archive = RecordingArchive()
    worker = reconciler(real_nomad, archive)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    try:
        task_id = gw1.submit("watched")
        alloc = wait_for(lambda: gw1.place("watched", task_id), what="a placement")
        real_nomad.start(alloc)
        real_nomad.finish(alloc)
        wait_for(lambda: archive.puts, timeout=10, what="the task to be archived")
        assert archive.puts[0][1].job_id == task_id
        polls = real_nomad.request_count(method="GET", path="/v1/jobs")
        time.sleep(0.5)
        assert real_nomad.request_count(method="GET", path="/v1/jobs") - polls <= 1  # parked, not polling
    finally:
        stop.set()
        gw1.deploy(container_spec("wake-up"))  # a job change ends the parked query
        thread.join(timeout=10)
    assert not thread.is_alive()


@pytest.fixture(params=["directory", "s3"])
def archive_url(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Where the archive lives: a directory, or a bucket on the session's real moto_server."""
    if request.param == "directory":
        return str(tmp_path / "archive")
    moto = request.getfixturevalue("moto_server")
    for name, value in moto.env.items():
        monkeypatch.setenv(name, value)  # read by the gateway started below and by open_archive here
    bucket = f"gc-{secrets.token_hex(4)}"
    moto.client("s3").create_bucket(Bucket=bucket)
    return f"s3://{bucket}/tasks"


def test_answers_from_the_archive_after_nomad_gc(
    real_nomad: NomadDouble, make_nomad_gateway: Callable[..., NomadGateway], archive_url: str
) -> None:
    gw = make_nomad_gateway(real_nomad, workers=1, archive=archive_url)
    gw.deploy(container_spec("old"))
    task_id = gw.submit("old", {"keep": True})
    alloc = gw.place("old", task_id)
    assert alloc is not None
    real_nomad.start(alloc)
    real_nomad.finish(alloc, exit_code=4, stdout=b"last words\n")
    before = gw.task("old", task_id)
    archive = open_archive(archive_url)
    assert reconciler(real_nomad, archive).reconcile().archived == [task_id]  # type: ignore[arg-type]
    assert gw.child("old", task_id) in real_nomad.gc()
    assert gw.task("old", task_id) == before
    assert gw("GET", f"/v1/apis/old/tasks/{task_id}/logs").text == "last words\n"
    assert gw("DELETE", f"/old?jobID={task_id}").status_code == 409
    assert gw("GET", "/v1/apis/old/tasks/0000000000000000").status_code == 404
    # The list goes on from Nomad's tasks into the archive's.
    newer = gw.submit("old")
    assert [t["job_id"] for t in gw("GET", "/v1/apis/old/tasks").json()["tasks"]] == [newer, task_id]
    first = gw("GET", "/v1/apis/old/tasks?limit=1").json()
    assert [t["job_id"] for t in first["tasks"]] == [newer] and first["next_cursor"].startswith("archive:")
    rest = gw("GET", f"/v1/apis/old/tasks?limit=1&cursor={first['next_cursor']}").json()
    assert rest["tasks"] == [before] and rest.get("next_cursor") is None
    failed = gw("GET", "/v1/apis/old/tasks?status=worker_error").json()["tasks"]
    assert [t["job_id"] for t in failed] == [task_id]
