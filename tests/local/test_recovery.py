"""The runner and shims dying: nothing is lost, nothing runs twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.backends.base import Unavailable
from gateway.task_states import TaskStatus

from .conftest import Local, wait_for

PY = sys.executable


def test_runner_killed_and_restarted(local: Local, tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    script = (
        "import os, sys, time; time.sleep(float(sys.argv[2])); "
        "open(os.path.join(sys.argv[1], os.environ['TASKAPI_JOB_ID'] + '-' + os.environ['TASKAPI_ATTEMPT']), 'x')"
    )
    local.deploy("durable", [PY, "-c", script, str(marks), "1.5"], max_concurrency=3)
    ids = [local.backend.submit("durable", {}, None).record.job_id for _ in range(6)]
    wait_for(lambda: local.backend.status_counts().get(("durable", "running"), 0) == 3, what="three running tasks")
    local.kill_runner(signal.SIGKILL)
    with pytest.raises(Unavailable):
        local.backend.check_ready()
    # While the runner is down, submissions are still accepted and the running tasks go on.
    ids.append(local.backend.submit("durable", {}, None).record.job_id)
    wait_for(lambda: len(list(marks.iterdir())) >= 3, what="the running tasks to finish without a runner")
    local.start_runner()
    for task_id in ids:
        status = local.wait_final("durable", task_id, 60)
        assert status.status is TaskStatus.SUCCEEDED, status
        assert [a.outcome for a in status.attempts] == ["succeeded"]
    assert sorted(p.name for p in marks.iterdir()) == sorted(f"{t}-1" for t in ids)


def test_runner_killed_between_fork_and_recording_the_shim(local: Local) -> None:
    # What a successor finds when the runner died right after forking a shim: the attempt has no shim in the
    # database and the shim has not written its pid file yet. The shim's lock says it lives: no second run.
    local.deploy("forked", ["sh", "-c", "echo $TASKAPI_ATTEMPT >> ../runs; sleep 1"])
    task_id = local.backend.submit("forked", {}, None).record.job_id
    local.wait_status("forked", task_id, "running")
    local.kill_runner(signal.SIGKILL)
    folder = local.state_dir / "attempts" / task_id / "1"
    with local.backend.store.write() as conn:
        conn.execute("UPDATE attempts SET shim_pid = NULL, shim_start_ticks = NULL WHERE task_id = ?", (task_id,))
    (folder / "shim.pid").rename(folder / "shim.pid.hidden")
    local.start_runner()
    status = local.wait_final("forked", task_id)
    assert status.status is TaskStatus.SUCCEEDED
    assert [a.outcome for a in status.attempts] == ["succeeded"]
    assert (folder.parent / "runs").read_text() == "1\n"


def test_attempt_recorded_but_never_forked_is_taken_back(local: Local) -> None:
    # The runner died after recording attempt 1 and before forking its shim: the task never ran, so the
    # next runner queues it again instead of reporting a lost attempt.
    local.deploy("unforked", ["sh", "-c", "echo $TASKAPI_ATTEMPT"])
    local.kill_runner(signal.SIGKILL)
    task_id = local.backend.submit("unforked", {}, None).record.job_id
    assert local.backend.store.start_attempt(task_id, 1, "old-runner")
    local.start_runner()
    status = local.wait_final("unforked", task_id)
    assert status.status is TaskStatus.SUCCEEDED
    assert [(a.attempt, a.outcome) for a in status.attempts] == [(1, "succeeded")]


def test_runner_sigterm_leaves_shims_running(local: Local) -> None:
    local.deploy("survivor", ["sh", "-c", "sleep 1; echo done"])
    task_id = local.backend.submit("survivor", {}, None).record.job_id
    local.wait_status("survivor", task_id, "running")
    local.kill_runner(signal.SIGTERM)
    status_file = local.state_dir / "attempts" / task_id / "1" / "status.json"
    wait_for(status_file.exists, what="the shim to finish without a runner")
    local.start_runner()
    status = local.wait_final("survivor", task_id)
    assert status.status is TaskStatus.SUCCEEDED and len(status.attempts) == 1


def test_shim_killed_means_lost_and_replaced(local: Local) -> None:
    script = "echo $$ > pid; if [ $TASKAPI_ATTEMPT = 1 ]; then sleep 60; fi"
    local.deploy("fragile", ["sh", "-c", script])
    task_id = local.backend.submit("fragile", {}, None).record.job_id
    folder = local.state_dir / "attempts" / task_id / "1"
    wait_for((folder / "pid").exists, what="the first attempt to start")
    shim_pid = int((folder / "shim.pid").read_text())
    task_pid = int((folder / "pid").read_text())
    os.kill(shim_pid, signal.SIGKILL)
    status = local.wait_final("fragile", task_id)
    assert status.status is TaskStatus.SUCCEEDED
    assert [a.outcome for a in status.attempts] == ["lost", "succeeded"]
    assert not Path(f"/proc/{task_pid}").exists() or _zombie(task_pid)


def _zombie(pid: int) -> bool:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"


def test_second_runner_refuses(local: Local) -> None:
    second = subprocess.run(
        [PY, "-m", "gateway.backends.local.runner"], env=local.env, capture_output=True, text=True, timeout=30
    )
    assert second.returncode == 1
    assert "another runner" in second.stderr
    local.backend.check_ready()
