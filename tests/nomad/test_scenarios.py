"""The HTTP contract on the Nomad backend: real gunicorn, python-nomad, and the Nomad double driven step by step."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import requests

from tests.nomad.conftest import NomadGateway, container_spec, unique
from tests.nomad_double import NomadDouble


def deploy_and_submit(gw: NomadGateway, prefix: str, **spec: object) -> tuple[str, str]:
    name = unique(prefix)
    gw.deploy(container_spec(name, **spec))
    return name, gw.submit(name, {"n": 1})


def run(gw: NomadGateway, name: str, task_id: str) -> str:
    alloc = gw.place(name, task_id)
    assert alloc is not None
    gw.nomad.start(alloc)
    return alloc


def test_success_with_logs(gw: NomadGateway) -> None:
    name, task_id = deploy_and_submit(gw, "ok")
    task = gw.task(name, task_id)
    assert task["status"] == "pending" and task["attempts"] == []
    assert task["config"] == {"n": 1} and task["timeout"] == 3600
    alloc = run(gw, name, task_id)
    assert gw.task(name, task_id)["status"] == "running"
    gw.nomad.finish(alloc, exit_code=0, stdout=b"hello\n", stderr=b"oops\n")
    task = gw.task(name, task_id)
    assert task["status"] == "succeeded" and task["end_time"]
    (attempt,) = task["attempts"]
    assert attempt["attempt"] == 1 and attempt["outcome"] == "succeeded" and attempt["exit_code"] == 0
    assert attempt["node"] == "cpu-1" and attempt["started_at"] and attempt["ended_at"]
    logs = gw("GET", f"/v1/apis/{name}/tasks/{task_id}/logs")
    assert logs.status_code == 200 and logs.text == "hello\n"
    assert gw("GET", f"/v1/apis/{name}/tasks/{task_id}/logs?stream=stderr&attempt=1").text == "oops\n"
    assert gw("GET", f"/v1/apis/{name}/tasks/{task_id}/logs?attempt=2").status_code == 404
    # The Cortex-compatible status endpoint answers the same.
    answer = gw("GET", f"/{name}?jobID={task_id}").json()
    assert answer["job_status"]["status"] == "succeeded"
    assert answer["endpoint"].endswith(f"/{name}?jobID={task_id}")


def test_payload_is_the_task_record(gw: NomadGateway) -> None:
    name, task_id = deploy_and_submit(gw, "payload")
    record = json.loads(gw.nomad.payload(gw.child(name, task_id)))
    assert record["job_id"] == task_id and record["config"] == {"n": 1} and record["api_name"] == name
    meta = gw.nomad.job(gw.child(name, task_id))["Meta"]
    assert meta["task_id"] == task_id and meta["timeout"] == "3600" and meta["submitted_at"] == record["start_time"]


def test_follow_logs_until_the_attempt_ends(gw: NomadGateway) -> None:
    name, task_id = deploy_and_submit(gw, "follow")
    alloc = run(gw, name, task_id)
    response = gw("GET", f"/v1/apis/{name}/tasks/{task_id}/logs?follow=true", stream=True)
    assert response.status_code == 200
    chunks = response.iter_content(chunk_size=None)
    gw.nomad.append_log(alloc, "stdout", "line 1\n")
    assert next(chunks) == b"line 1\n"
    finisher = threading.Timer(0.2, gw.nomad.finish, args=(alloc,), kwargs={"stdout": b"line 2\n"})
    finisher.start()
    assert b"".join(chunks) == b"line 2\n"
    finisher.join()


def test_exit_code_is_worker_error(gw: NomadGateway) -> None:
    name, task_id = deploy_and_submit(gw, "exit")
    gw.nomad.finish(run(gw, name, task_id), exit_code=3)
    task = gw.task(name, task_id)
    assert task["status"] == "worker_error"
    assert [(a["outcome"], a["exit_code"]) for a in task["attempts"]] == [("failed", 3)]


def test_retry_once_then_worker_error(gw: NomadGateway) -> None:
    name, task_id = deploy_and_submit(gw, "retry", retry={"attempts": 1, "delay": "5s"})
    gw.nomad.finish(run(gw, name, task_id), exit_code=1)
    task = gw.task(name, task_id)
    assert task["status"] == "pending"
    assert task["message"].startswith("retrying in ") and task["message"].endswith("attempt 2 of 2")
    gw.nomad.advance(5)  # the delayed reschedule is placed
    second = gw.nomad.latest_alloc(gw.child(name, task_id))
    assert second is not None
    gw.nomad.start(second)
    assert gw.task(name, task_id)["status"] == "running"
    gw.nomad.finish(second, exit_code=1)
    task = gw.task(name, task_id)
    assert task["status"] == "worker_error"
    assert [(a["attempt"], a["outcome"], a["exit_code"]) for a in task["attempts"]] == [
        (1, "failed", 1),
        (2, "failed", 1),
    ]


def test_preempted_twice_then_succeeded(gw: NomadGateway) -> None:
    name, task_id = deploy_and_submit(gw, "spot")  # retry.attempts 0: preemptions never use retries
    for _ in range(2):
        gw.nomad.stop_alloc_for_spot(run(gw, name, task_id))
        task = gw.task(name, task_id)
        assert task["status"] == "pending"
        assert "preempted" in task["message"]
    gw.nomad.finish(run(gw, name, task_id), exit_code=0)
    task = gw.task(name, task_id)
    assert task["status"] == "succeeded"
    assert [a["outcome"] for a in task["attempts"]] == ["preempted", "preempted", "succeeded"]


def test_lost_node_is_replaced(gw: NomadGateway, nomad: NomadDouble) -> None:
    name = unique("lost")
    gw.deploy(container_spec(name, node_groups=["lossy"]))
    first_node = nomad.add_node("lossy-1", pool="lossy")
    task_id = gw.submit(name)
    run(gw, name, task_id)
    nomad.lose_node(first_node)
    task = gw.task(name, task_id)
    assert task["status"] == "pending" and task["attempts"][0]["outcome"] == "lost"
    nomad.add_node("lossy-2", pool="lossy")
    second = run(gw, name, task_id)
    nomad.finish(second)
    task = gw.task(name, task_id)
    assert task["status"] == "succeeded"
    assert [(a["outcome"], a["node"]) for a in task["attempts"]] == [("lost", "lossy-1"), ("succeeded", "lossy-2")]


def test_oom_is_worker_oom(gw: NomadGateway) -> None:
    name, task_id = deploy_and_submit(gw, "oom")
    gw.nomad.finish(run(gw, name, task_id), oom=True)
    task = gw.task(name, task_id)
    assert task["status"] == "worker_oom"
    assert [(a["outcome"], a["exit_code"]) for a in task["attempts"]] == [("oom", 137)]


def test_max_run_duration_is_timed_out(gw: NomadGateway) -> None:
    name, task_id = deploy_and_submit(gw, "slow", timeout=60)
    run(gw, name, task_id)
    gw.nomad.advance(61)
    task = gw.task(name, task_id)
    assert task["status"] == "timed_out"
    assert [a["outcome"] for a in task["attempts"]] == ["timed_out"]


def test_stop_then_409(gw: NomadGateway) -> None:
    name, task_id = deploy_and_submit(gw, "stop")
    run(gw, name, task_id)
    response = gw("DELETE", f"/{name}?jobID={task_id}")
    assert response.status_code == 200, response.text
    assert response.json() == {"message": f"stopped job {task_id}"}
    task = gw.task(name, task_id)
    assert task["status"] == "stopped"
    assert [a["outcome"] for a in task["attempts"]] == ["stopped"]
    assert "already ended" in gw.problem(gw("DELETE", f"/{name}?jobID={task_id}"), 409)["detail"]


def test_stop_a_pending_task(gw: NomadGateway) -> None:
    name, task_id = deploy_and_submit(gw, "stop-pending")
    assert gw("DELETE", f"/{name}?jobID={task_id}").status_code == 200
    assert gw.task(name, task_id)["status"] == "stopped"


def test_pool_at_zero_waits_for_capacity(gw: NomadGateway, nomad: NomadDouble) -> None:
    name = unique("gpu")
    gw.deploy(container_spec(name, node_groups=["gpu-spot"]))
    task_id = gw.submit(name)
    assert gw.place(name, task_id) is None
    task = gw.task(name, task_id)
    assert task["status"] == "pending"
    assert task["message"] == "waiting for capacity in node group gpu-spot"
    nomad.add_node("gpu-1", pool="gpu-spot")
    run(gw, name, task_id)
    task = gw.task(name, task_id)
    assert task["status"] == "running" and task["attempts"][0]["node"] == "gpu-1"


def test_idempotent_resubmission(gw: NomadGateway) -> None:
    name = unique("idem")
    gw.deploy(container_spec(name))
    body = {"config": {"x": 1}}
    first = gw("POST", f"/{name}", json=body, headers={"Idempotency-Key": "k-1"})
    again = gw("POST", f"/{name}", json=body, headers={"Idempotency-Key": "k-1"})
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    assert len(gw.nomad.children(f"taskapi-{name}")) == 1
    clash = gw("POST", f"/{name}", json={"config": {"x": 2}}, headers={"Idempotency-Key": "k-1"})
    assert first.json()["job_id"] in gw.problem(clash, 409)["detail"]
    other = gw("POST", f"/{name}", json=body, headers={"Idempotency-Key": "k-2"})
    assert other.json()["job_id"] != first.json()["job_id"]


def test_payload_over_16k_is_413(gw: NomadGateway) -> None:
    name = unique("big")
    gw.deploy(container_spec(name))
    gw.nomad.reset_requests()
    response = gw("POST", f"/{name}", json={"config": {"blob": "x" * 17000}})
    detail = gw.problem(response, 413)["detail"]
    assert "16384" in detail and "16 KiB" in detail
    assert gw.nomad.request_count(prefix=f"/v1/job/taskapi-{name}/dispatch") == 0


def test_longer_timeout_than_the_api_is_422(gw: NomadGateway) -> None:
    name = unique("tmo")
    gw.deploy(container_spec(name, timeout=60))
    assert "max_run_duration" in gw.problem(gw("POST", f"/{name}", json={"timeout": 61}), 422)["detail"]
    assert gw.submit(name, timeout=30)


def test_process_driver_is_refused(gw: NomadGateway) -> None:
    spec = container_spec(unique("proc"), driver="process")
    response = gw("PUT", f"/v1/apis/{spec['name']}", json=spec)
    assert "raw_exec" in gw.problem(response, 422)["detail"]


def test_apis_and_task_lists(gw: NomadGateway) -> None:
    name = unique("list")
    info = gw.deploy(container_spec(name, networking={"endpoint": f"{name}-ep"}))
    assert info["endpoint"] == f"{name}-ep" and info["spec"]["driver"] == "docker"
    assert name in [a["name"] for a in gw("GET", "/v1/apis").json()["apis"]]
    ids = []
    for _ in range(3):
        ids.append(gw.submit(f"{name}-ep"))
        time.sleep(0.002)  # task IDs order submissions by the millisecond
    gw.nomad.finish(run(gw, name, ids[0]), exit_code=2)
    page = gw("GET", f"/v1/apis/{name}/tasks?limit=2").json()
    assert [t["job_id"] for t in page["tasks"]] == ids[::-1][:2]  # newest first
    rest = gw("GET", f"/v1/apis/{name}/tasks?limit=2&cursor={page['next_cursor']}").json()
    assert [t["job_id"] for t in rest["tasks"]] == [ids[0]] and rest.get("next_cursor") is None
    assert rest["tasks"][0]["status"] == "worker_error" and rest["tasks"][0]["attempts"][0]["exit_code"] == 2
    failed = gw("GET", f"/v1/apis/{name}/tasks?status=worker_error").json()["tasks"]
    assert [t["job_id"] for t in failed] == [ids[0]]
    metrics = gw("GET", "/metrics").text
    assert f'api="{name}"' in metrics


def test_delete_api_stops_its_tasks(gw: NomadGateway) -> None:
    name, task_id = deploy_and_submit(gw, "gone")
    run(gw, name, task_id)
    assert gw("DELETE", f"/v1/apis/{name}").status_code in (200, 204)
    assert not gw.nomad.has_job(f"taskapi-{name}")
    assert gw.nomad.job(gw.child(name, task_id))["Stop"] is True
    assert gw.problem(gw("GET", f"/v1/apis/{name}"), 404)


def test_unknown_task_is_404(gw: NomadGateway) -> None:
    name = unique("nf")
    gw.deploy(container_spec(name))
    gw.problem(gw("GET", f"/v1/apis/{name}/tasks/0123456789abcdef"), 404)


def test_nomad_down_is_503(make_nomad_gateway: Callable[..., NomadGateway]) -> None:
    double = NomadDouble().start()
    try:
        gw = make_nomad_gateway(double)
        gw.deploy(container_spec("downtime"))
    finally:
        double.stop()
    for method, path in (("GET", "/v1/apis"), ("POST", "/downtime"), ("GET", "/v1/apis/downtime/tasks")):
        response = gw(method, path, json={} if method == "POST" else None)
        assert response.status_code == 503, (path, response.text)
        assert response.headers["Content-Type"].startswith("application/problem+json")
        assert "Nomad" in response.json()["detail"]
    ready = requests.get(f"{gw.url}/readyz", timeout=10)
    assert ready.status_code == 503 and "Nomad" in ready.json()["detail"]


def test_image_pull_failure_is_unexpected_error(gw: NomadGateway) -> None:
    name, task_id = deploy_and_submit(gw, "pull", retry={"attempts": 2})
    alloc = gw.place(name, task_id)
    assert alloc is not None
    gw.nomad.driver_failure(alloc, "Failed to pull `busybox:nope`: manifest unknown")
    task = gw.task(name, task_id)
    assert task["status"] == "unexpected_error"
    assert "manifest unknown" in task["message"]
    assert [(a["outcome"], a["exit_code"]) for a in task["attempts"]] == [("failed", None)]


def test_follow_a_task_before_it_is_placed(gw: NomadGateway) -> None:
    name, task_id = deploy_and_submit(gw, "early")
    response = gw("GET", f"/v1/apis/{name}/tasks/{task_id}/logs?follow=true", stream=True)
    assert response.status_code == 200
    body: list[bytes] = []
    reader = threading.Thread(target=lambda: body.extend(response.iter_content(chunk_size=None)))
    reader.start()
    assert gw.nomad.wait_for_waiters(1)  # the gateway waits on a blocking query, not a polling loop
    alloc = run(gw, name, task_id)
    gw.nomad.append_log(alloc, "stdout", "first\n")
    gw.nomad.finish(alloc, stdout=b"second\n")
    reader.join(timeout=10)
    assert b"".join(body) == b"first\nsecond\n"


def test_acl_token_from_nomads_own_variable(tmp_path: Path) -> None:
    with NomadDouble(acl_token="s3cr3t") as double:
        double.add_node("cpu-1", pool="cpu-spot", node_class="cpu-spot")
        without = NomadGateway(tmp_path / "without", double)
        with_token = NomadGateway(tmp_path / "with", double)
        with_token.env["NOMAD_TOKEN"] = "s3cr3t"  # read as Nomad's CLI reads it
        for server in (without, with_token):
            server.start()
        try:
            detail = with_token.problem(without("GET", "/v1/apis"), 503)["detail"]
            assert "NOMAD_TOKEN" in detail and "s3cr3t" not in detail
            with_token.deploy(container_spec("guarded"))
            assert with_token.submit("guarded")
        finally:
            without.stop()
            with_token.stop()


def test_node_groups_must_be_pools_that_run_tasks(gw: NomadGateway) -> None:
    unknown = gw("PUT", "/v1/apis/nowhere", json=container_spec("nowhere", node_groups=["moon"]))
    assert "unknown node group 'moon'" in gw.problem(unknown, 422)["detail"]
    platform = gw("PUT", "/v1/apis/intruder", json=container_spec("intruder", node_groups=["platform"]))
    assert "runs the platform's own jobs" in gw.problem(platform, 422)["detail"]
