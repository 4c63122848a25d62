"""Tasks in real podman containers."""

from __future__ import annotations

import json
import os
import signal
import subprocess

import pytest

from gateway.spec import validate_spec
from gateway.task_states import TaskStatus

from .conftest import Local, podman_args, wait_for


def _containers_named(prefix: str) -> list[str]:
    out = subprocess.run(
        ["podman", *podman_args()[0].split(), "ps", "--all", "--format", "{{.Names}}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return [name for name in out.stdout.split() if name.startswith(prefix)]


@pytest.fixture
def image(test_image: str) -> str:
    return test_image


def test_container_sees_job_file(local: Local, image: str) -> None:
    command = ["sh", "-c", 'cat /cortex/spec/job.json; echo; echo "$TASKAPI_JOB_FILE $TASKAPI_ATTEMPT $GREETING"']
    local.deploy("boxed", command, driver="podman", image=image, env={"GREETING": "hi"}, compute={"mem": "64Mi"})
    record = local.backend.submit("boxed", {"k": "v"}, None).record
    status = local.wait_final("boxed", record.job_id, 60)
    assert status.status is TaskStatus.SUCCEEDED, status
    job_line, env_line = b"".join(local.backend.logs("boxed", record.job_id, "stdout", None, False)).splitlines()
    assert json.loads(job_line) == record.model_dump()
    assert env_line == b"/cortex/spec/job.json 1 hi"
    assert _containers_named(f"taskapi-{record.job_id}") == []


def test_container_exit_code(local: Local, image: str) -> None:
    local.deploy("boxfail", ["sh", "-c", "exit 7"], driver="podman", image=image)
    task_id = local.backend.submit("boxfail", {}, None).record.job_id
    status = local.wait_final("boxfail", task_id, 60)
    assert status.status is TaskStatus.WORKER_ERROR
    assert [(a.exit_code, a.outcome) for a in status.attempts] == [(7, "failed")]


def test_container_oom(local: Local, image: str) -> None:
    command = ["sh", "-c", "head -c 100000000 /dev/zero | tail"]
    local.deploy("hungry", command, driver="podman", image=image, compute={"mem": "16Mi"})
    task_id = local.backend.submit("hungry", {}, None).record.job_id
    status = local.wait_final("hungry", task_id, 60)
    assert status.status is TaskStatus.WORKER_OOM, status
    assert status.attempts[0].outcome == "oom" and status.attempts[0].exit_code == 137


def test_container_within_memory_is_not_oom(local: Local, image: str) -> None:
    # Exit 137 (a child killed by SIGKILL) far below the limit: a failure, not an OOM.
    local.deploy(
        "selfkill",
        ["sh", "-c", "sleep 60 & kill -9 $!; wait $!"],
        driver="podman",
        image=image,
        compute={"mem": "64Mi"},
    )
    task_id = local.backend.submit("selfkill", {}, None).record.job_id
    status = local.wait_final("selfkill", task_id, 60)
    assert status.status is TaskStatus.WORKER_ERROR, status
    assert status.attempts[0].exit_code == 137


def test_container_stop(local: Local, image: str) -> None:
    local.deploy("boxsleep", ["sleep", "60"], driver="podman", image=image, kill_timeout="1s")
    task_id = local.backend.submit("boxsleep", {}, None).record.job_id
    local.wait_status("boxsleep", task_id, "running")
    # Stop only once the container exists, so that the stop exercises 'podman kill'.
    wait_for(lambda: _containers_named(f"taskapi-{task_id}"), 30, "the container")
    local.backend.stop_task("boxsleep", task_id)
    status = local.wait_final("boxsleep", task_id, 60)
    assert status.status is TaskStatus.STOPPED
    assert _containers_named(f"taskapi-{task_id}") == []


def test_sidecar_is_removed_with_the_leader(local: Local, image: str) -> None:
    spec = validate_spec(
        {
            "name": "pod",
            "kind": "TaskAPI",
            "driver": "podman",
            "pod": {
                "containers": [
                    {"name": "main", "image": image, "command": ["sh", "-c", "sleep 1; echo done"]},
                    {"name": "side", "image": image, "command": ["sh", "-c", "echo side; sleep 60"]},
                ]
            },
        }
    )
    local.backend.deploy(spec)
    task_id = local.backend.submit("pod", {}, None).record.job_id
    status = local.wait_final("pod", task_id, 60)
    assert status.status is TaskStatus.SUCCEEDED
    assert _containers_named(f"taskapi-{task_id}") == []
    assert (local.state_dir / "attempts" / task_id / "1" / "side.log").read_bytes() == b"side\n"


def test_container_shim_killed_is_lost_and_cleaned(local: Local, image: str) -> None:
    script = 'if [ "$TASKAPI_ATTEMPT" = 1 ]; then sleep 60; fi; echo attempt $TASKAPI_ATTEMPT'
    local.deploy("boxlost", ["sh", "-c", script], driver="podman", image=image)
    task_id = local.backend.submit("boxlost", {}, None).record.job_id
    wait_for(lambda: _containers_named(f"taskapi-{task_id}-1"), 30, "the first container")
    folder = local.state_dir / "attempts" / task_id / "1"
    os.kill(int((folder / "shim.pid").read_text()), signal.SIGKILL)
    status = local.wait_final("boxlost", task_id, 60)
    assert status.status is TaskStatus.SUCCEEDED
    assert [a.outcome for a in status.attempts] == ["lost", "succeeded"]
    assert _containers_named(f"taskapi-{task_id}") == []
