"""Killed processes and concurrent load: nothing accepted is lost, every task ends exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.conftest import Gateway, free_port, python_spec, wait_for

FINAL = {"succeeded", "worker_error", "worker_oom", "timed_out", "stopped", "unexpected_error"}


def _mark_runs(tmp_path: Path) -> str:
    """A task that appends one line per run to a file named after its task, so double runs show."""
    return (
        "import os, time; "
        f"open(os.path.join({str(tmp_path)!r}, os.environ['TASKAPI_JOB_ID']), 'a').write('run\\n'); "
        "time.sleep(1.5)"
    )


def test_runner_killed_mid_task_loses_nothing(make_gateway, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    gateway: Gateway = make_gateway()
    gateway.deploy(python_spec("survivor", _mark_runs(runs)))
    ids = [gateway.submit("survivor") for _ in range(4)]
    wait_for(lambda: any(gateway.task("survivor", i)["status"] == "running" for i in ids), what="a running task")
    old_runner = gateway.pid_of("runner")
    os.kill(old_runner, signal.SIGKILL)
    # The supervisor restarts the runner, which re-adopts the shims of the tasks still running.
    wait_for(lambda: gateway.pid_of("runner") != old_runner, what="a new runner")
    for task_id in ids:
        status = gateway.wait_final("survivor", task_id, timeout=60)
        assert status["status"] == "succeeded", status
        assert [a["outcome"] for a in status["attempts"]] == ["succeeded"]
        assert (runs / task_id).read_text() == "run\n"


def test_shim_killed_is_lost_and_replaced(make_gateway, tmp_path: Path) -> None:
    gateway: Gateway = make_gateway()
    gateway.deploy(python_spec("orphan", "import time; time.sleep(1)"))
    task_id = gateway.submit("orphan")
    status = gateway.wait_status("orphan", task_id, "running")
    pid_file = gateway.state_dir / "attempts" / task_id / "1" / "shim.pid"
    shim_pid = int(wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), what="the shim's pid"))
    assert status["attempts"][0]["attempt"] == 1
    os.kill(shim_pid, signal.SIGKILL)
    status = gateway.wait_final("orphan", task_id, timeout=60)
    assert status["status"] == "succeeded"
    assert [a["outcome"] for a in status["attempts"]] == ["lost", "succeeded"]


def test_gateway_killed_and_restarted_loses_no_accepted_submission(make_gateway, tmp_path: Path) -> None:
    state = tmp_path / "state"
    gateway: Gateway = make_gateway(state)
    gateway.deploy(python_spec("durable", "pass"))
    accepted = [gateway.submit("durable") for _ in range(20)]
    gateway.stop(signal.SIGKILL)
    restarted: Gateway = make_gateway(state)
    for task_id in accepted:
        assert restarted.wait_final("durable", task_id)["status"] == "succeeded"
    listed = restarted("GET", "/v1/apis/durable/tasks", params={"limit": 100}).json()["tasks"]
    assert {t["job_id"] for t in listed} == set(accepted)


def test_200_concurrent_submissions(gateway: Gateway) -> None:
    gateway.deploy(python_spec("crowd", "pass"))
    with ThreadPoolExecutor(max_workers=16) as pool:
        ids = list(pool.map(lambda _: gateway.submit("crowd", {"n": 1}), range(200)))
    assert len(set(ids)) == 200

    def all_done() -> bool:
        tasks, cursor = [], None
        while True:
            params = {"limit": 500, **({"cursor": cursor} if cursor else {})}
            page = gateway("GET", "/v1/apis/crowd/tasks", params=params).json()
            tasks += page["tasks"]
            cursor = page.get("next_cursor")
            if not cursor:
                break
        return len(tasks) == 200 and all(t["status"] == "succeeded" for t in tasks)

    wait_for(all_done, timeout=120, interval=0.5, what="200 tasks to succeed")


def test_concurrent_idempotent_submits_make_one_task(gateway: Gateway) -> None:
    gateway.deploy(python_spec("once", "pass"))

    def submit(_: int) -> str:
        response = gateway("POST", "/once", json={"config": {}}, headers={"Idempotency-Key": "same"})
        assert response.status_code == 200, response.text
        return str(response.json()["job_id"])

    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = set(pool.map(submit, range(32)))
    assert len(ids) == 1


def test_a_second_serve_on_the_same_state_is_refused_and_harms_nothing(make_gateway, tmp_path: Path) -> None:
    gateway: Gateway = make_gateway(tmp_path / "state")
    gateway.deploy(python_spec("shared", "pass"))
    gateway.submit("shared")
    second = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "serve", "--port", str(free_port()),
         "--state-dir", str(gateway.state_dir)],
        env=gateway.env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert second.returncode == 1 and "already using" in second.stderr
    # The first gateway's metrics (kept in the state directory) were left alone.
    assert 'taskapi_tasks_submitted_total{api="shared"} 1.0' in gateway("GET", "/metrics").text
