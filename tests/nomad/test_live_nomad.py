"""The scenarios a real Nomad can run on its own, against the cluster at ``$NOMAD_ADDR`` (skipped without it).

Try it with a dev agent (Docker needed on the machine):

    sudo nomad agent -dev -bind 127.0.0.1 &
    NOMAD_ADDR=http://127.0.0.1:4646 python -m pytest tests/nomad/test_live_nomad.py -v

``NOMAD_TOKEN``, ``NOMAD_NAMESPACE``, ``NOMAD_REGION`` and the TLS variables are read as Nomad's CLI reads them.
The image defaults to busybox (``TASKAPI_LIVE_IMAGE`` overrides it); it must be pullable by the agent.
Scenarios that need control over allocations (OOM on demand, a lost node, a spot stop) run against the double.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Gateway, wait_for

pytestmark = pytest.mark.skipif(not os.environ.get("NOMAD_ADDR"), reason="NOMAD_ADDR is not set: no real Nomad")

IMAGE = os.environ.get("TASKAPI_LIVE_IMAGE", "docker.io/library/busybox:1.36")
SUFFIX = secrets.token_hex(3)


def spec(name: str, command: list[str]) -> dict[str, Any]:
    container = {"name": "main", "image": IMAGE, "command": command, "compute": {"cpu": "100m", "mem": "64Mi"}}
    return {"name": f"{name}-{SUFFIX}", "kind": "TaskAPI", "driver": "docker", "pod": {"containers": [container]}}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    server = Gateway(Path(tmp_path_factory.mktemp("live")), backend="nomad").start()
    yield server
    for api in server("GET", "/v1/apis").json()["apis"]:
        if api["name"].endswith(f"-{SUFFIX}"):
            server("DELETE", f"/v1/apis/{api['name']}")
    server.stop()


def test_success_and_logs(live: Gateway) -> None:
    api = spec("live-ok", ["sh", "-c", "cat /cortex/spec/job.json; echo; echo job=$TASKAPI_JOB_ID"])
    live.deploy(api)
    task_id = live.submit(api["name"], {"answer": 42})
    task = live.wait_final(api["name"], task_id, timeout=300)
    assert task["status"] == "succeeded", task
    assert task["attempts"][0]["outcome"] == "succeeded" and task["attempts"][0]["exit_code"] == 0
    logs = live("GET", f"/v1/apis/{api['name']}/tasks/{task_id}/logs").text
    assert '"answer":42' in logs.replace(" ", "") and f"job={task_id}" in logs


def test_exit_code(live: Gateway) -> None:
    api = spec("live-exit", ["sh", "-c", "exit 3"])
    live.deploy(api)
    task_id = live.submit(api["name"])
    task = live.wait_final(api["name"], task_id, timeout=300)
    assert task["status"] == "worker_error", task
    assert [(a["outcome"], a["exit_code"]) for a in task["attempts"]] == [("failed", 3)]


def test_stop_then_409(live: Gateway) -> None:
    api = spec("live-stop", ["sleep", "600"])
    live.deploy(api)
    task_id = live.submit(api["name"])
    wait_for(lambda: live.task(api["name"], task_id)["status"] == "running", timeout=300, what="running")
    assert live("DELETE", f"/{api['name']}?jobID={task_id}").status_code == 200
    assert live.wait_final(api["name"], task_id)["status"] == "stopped"
    assert live("DELETE", f"/{api['name']}?jobID={task_id}").status_code == 409


def test_idempotency_and_payload_limit(live: Gateway) -> None:
    api = spec("live-idem", ["true"])
    live.deploy(api)
    headers = {"Idempotency-Key": f"live-{SUFFIX}"}
    first = live("POST", f"/{api['name']}", json={"config": {"x": 1}}, headers=headers)
    again = live("POST", f"/{api['name']}", json={"config": {"x": 1}}, headers=headers)
    assert first.status_code == again.status_code == 200 and first.json() == again.json()
    assert live("POST", f"/{api['name']}", json={"config": {"x": 2}}, headers=headers).status_code == 409
    too_big = live("POST", f"/{api['name']}", json={"config": {"blob": "x" * 17000}})
    assert too_big.status_code == 413 and "16 KiB" in too_big.json()["detail"]
