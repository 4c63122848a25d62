"""Task scenarios over real HTTP: gunicorn, the runner, real processes and real podman containers."""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime
from pathlib import Path

import requests

from tests.conftest import Gateway, process_spec, python_spec, wait_for

READ_JOB_FILE = (
    "import json, os, sys; job = json.load(open(os.environ['TASKAPI_JOB_FILE'])); "
    "print(json.dumps({'sum': sum(job['config']['numbers']), 'job_id': job['job_id'], "
    "'attempt': os.environ['TASKAPI_ATTEMPT'], 'api': os.environ['TASKAPI_API_NAME'], "
    "'env_id': os.environ['TASKAPI_JOB_ID']}))"
)


def test_success_reports_record_status_and_logs(gateway: Gateway) -> None:
    gateway.deploy(python_spec("adder", READ_JOB_FILE))
    answer = gateway("POST", "/adder", json={"config": {"numbers": [1, 2, 3]}, "timeout": 120})
    assert answer.status_code == 200
    record = answer.json()
    assert record["api_name"] == "adder" and record["kind"] == "TaskAPI" and record["workers"] == 1
    assert record["config"] == {"numbers": [1, 2, 3]} and record["timeout"] == 120
    assert len(record["job_id"]) == 16 and record["start_time"].endswith("Z")

    status = gateway.wait_final("adder", record["job_id"])
    assert status["status"] == "succeeded"
    assert status["end_time"] and "worker_counts" not in status
    [attempt] = status["attempts"]
    assert attempt["attempt"] == 1 and attempt["exit_code"] == 0 and attempt["outcome"] == "succeeded"

    cortex = gateway("GET", "/adder", params={"jobID": record["job_id"]}).json()
    assert cortex["job_status"]["status"] == "succeeded"
    assert cortex["endpoint"].endswith(f"/adder?jobID={record['job_id']}")

    out = json.loads(gateway("GET", f"/v1/apis/adder/tasks/{record['job_id']}/logs").text)
    assert out == {"sum": 6, "job_id": record["job_id"], "attempt": "1", "api": "adder", "env_id": record["job_id"]}


def test_exit_code_is_worker_error(gateway: Gateway) -> None:
    gateway.deploy(python_spec("exit3", "import sys; print('bad', file=sys.stderr); sys.exit(3)"))
    status = gateway.wait_final("exit3", gateway.submit("exit3"))
    assert status["status"] == "worker_error"
    [attempt] = status["attempts"]
    assert attempt["exit_code"] == 3 and attempt["outcome"] == "failed"
    logs = gateway("GET", f"/v1/apis/exit3/tasks/{status['job_id']}/logs", params={"stream": "stderr"})
    assert logs.text == "bad\n" and logs.headers["Content-Type"].startswith("text/plain")


def test_retries_really_happen(gateway: Gateway) -> None:
    code = "import os, sys; n = int(os.environ['TASKAPI_ATTEMPT']); print('attempt', n); sys.exit(0 if n >= 3 else 1)"
    gateway.deploy(python_spec("flaky", code, retry={"attempts": 2, "delay": "100ms"}))
    status = gateway.wait_final("flaky", gateway.submit("flaky"))
    assert status["status"] == "succeeded"
    assert [a["outcome"] for a in status["attempts"]] == ["failed", "failed", "succeeded"]
    assert [a["attempt"] for a in status["attempts"]] == [1, 2, 3]
    for n in (1, 2, 3):
        logs = gateway("GET", f"/v1/apis/flaky/tasks/{status['job_id']}/logs", params={"attempt": n}).text
        assert logs == f"attempt {n}\n"


def test_retries_exhausted_is_worker_error(gateway: Gateway) -> None:
    gateway.deploy(python_spec("always-fails", "raise SystemExit(7)", retry={"attempts": 1, "delay": "50ms"}))
    status = gateway.wait_final("always-fails", gateway.submit("always-fails"))
    assert status["status"] == "worker_error"
    assert [a["exit_code"] for a in status["attempts"]] == [7, 7]


def test_timeout_kills_the_task(gateway: Gateway, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    code = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(600)"
    gateway.deploy(python_spec("sleeper", code, kill_timeout="1s"))
    task_id = gateway.submit("sleeper", timeout=2)
    status = gateway.wait_final("sleeper", task_id, timeout=30)
    assert status["status"] == "timed_out"
    assert status["attempts"][-1]["outcome"] == "timed_out"
    pid = int(pid_file.read_text())
    wait_for(lambda: not Path(f"/proc/{pid}").exists(), timeout=10, what="the task process to be gone")


def test_sigterm_is_ignored_then_sigkill_after_kill_timeout(gateway: Gateway) -> None:
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(600)"
    )
    gateway.deploy(python_spec("stubborn", code, kill_timeout="500ms"))
    task_id = gateway.submit("stubborn")
    wait_for(lambda: gateway("GET", f"/v1/apis/stubborn/tasks/{task_id}/logs").text == "up\n", what="the task to start")
    assert gateway("DELETE", "/stubborn", params={"jobID": task_id}).json() == {"message": f"stopped job {task_id}"}
    status = gateway.wait_final("stubborn", task_id, timeout=20)
    assert status["status"] == "stopped"


def test_stop_then_stop_again_is_409(gateway: Gateway) -> None:
    gateway.deploy(python_spec("stoppable", "import time; print('up', flush=True); time.sleep(600)"))
    task_id = gateway.submit("stoppable")
    gateway.wait_status("stoppable", task_id, "running")
    assert gateway("DELETE", "/stoppable", params={"jobID": task_id}).status_code == 200
    status = gateway.wait_final("stoppable", task_id)
    assert status["status"] == "stopped" and status["attempts"][-1]["outcome"] == "stopped"
    again = gateway("DELETE", "/stoppable", params={"jobID": task_id})
    assert again.status_code == 409 and again.headers["Content-Type"].startswith("application/problem+json")


def test_max_concurrency_is_respected(gateway: Gateway) -> None:
    gateway.deploy(python_spec("narrow", "import time; time.sleep(0.4)", max_concurrency=2))
    ids = [gateway.submit("narrow") for _ in range(6)]
    waiting = wait_for(
        lambda: [t for t in (gateway.task("narrow", i) for i in ids) if t["status"] == "pending" and t.get("message")],
        what="a task waiting for max_concurrency",
    )
    assert "max_concurrency" in waiting[0]["message"]
    spans = []
    for task_id in ids:
        [attempt] = gateway.wait_final("narrow", task_id)["attempts"]
        spans.append(
            (datetime.fromisoformat(attempt["started_at"][:-1]), datetime.fromisoformat(attempt["ended_at"][:-1]))
        )
    overlap = max(sum(1 for s, e in spans if s <= start < e) for start, _ in spans)
    assert overlap <= 2


def test_list_is_newest_first_with_cursor_and_filter(gateway: Gateway) -> None:
    gateway.deploy(python_spec("listed", "pass"))
    ids = [gateway.submit("listed") for _ in range(5)]
    for task_id in ids:
        gateway.wait_final("listed", task_id)
    seen, cursor = [], None
    while True:
        page = gateway(
            "GET", "/v1/apis/listed/tasks", params={"limit": 2, **({"cursor": cursor} if cursor else {})}
        ).json()
        seen += [t["job_id"] for t in page["tasks"]]
        cursor = page.get("next_cursor")
        if not cursor:
            break
    assert seen == ids[::-1]
    succeeded = gateway("GET", "/v1/apis/listed/tasks", params={"status": "succeeded"}).json()["tasks"]
    assert {t["job_id"] for t in succeeded} == set(ids)
    assert gateway("GET", "/v1/apis/listed/tasks", params={"status": "running"}).json()["tasks"] == []


def test_logs_follow_streams_until_the_end(gateway: Gateway) -> None:
    code = "import time\nfor i in range(3):\n    print('line', i, flush=True); time.sleep(0.2)"
    gateway.deploy(python_spec("chatty", code))
    task_id = gateway.submit("chatty")
    with gateway("GET", f"/v1/apis/chatty/tasks/{task_id}/logs", params={"follow": "true"}, stream=True) as response:
        assert response.status_code == 200
        text = b"".join(response.iter_content(chunk_size=None)).decode()
    assert text == "line 0\nline 1\nline 2\n"


def test_idempotency_key(gateway: Gateway) -> None:
    gateway.deploy(python_spec("idem", "pass"))
    headers = {"Idempotency-Key": "order-42"}
    first = gateway("POST", "/idem", json={"config": {"n": 1}}, headers=headers).json()
    second = gateway("POST", "/idem", json={"config": {"n": 1}}, headers=headers).json()
    assert first["job_id"] == second["job_id"]
    clash = gateway("POST", "/idem", json={"config": {"n": 2}}, headers=headers)
    assert clash.status_code == 409 and clash.headers["Content-Type"].startswith("application/problem+json")
    tasks = gateway("GET", "/v1/apis/idem/tasks").json()["tasks"]
    assert [t["job_id"] for t in tasks] == [first["job_id"]]


def test_custom_endpoint_and_api_management(gateway: Gateway) -> None:
    info = gateway.deploy(python_spec("managed", "pass", networking={"endpoint": "/run-managed"}))
    assert info["endpoint"] == "run-managed"
    assert any(a["name"] == "managed" for a in gateway("GET", "/v1/apis").json()["apis"])
    task_id = gateway.submit("run-managed")
    gateway.wait_final("managed", task_id)
    assert gateway("DELETE", "/v1/apis/managed").status_code == 200
    assert gateway("GET", "/v1/apis/managed").status_code == 404
    assert gateway("POST", "/run-managed", json={}).status_code == 404


def test_delete_api_stops_its_tasks(gateway: Gateway) -> None:
    gateway.deploy(python_spec("doomed", "import time; time.sleep(600)"))
    task_id = gateway.submit("doomed")
    gateway.wait_status("doomed", task_id, "running")
    assert gateway("DELETE", "/v1/apis/doomed").status_code == 200
    gateway.deploy(python_spec("doomed", "pass"))
    assert gateway.wait_final("doomed", task_id)["status"] == "stopped"


def test_container_reads_cortex_job_file(gateway: Gateway, test_image: str) -> None:
    spec = {
        "name": "boxed",
        "kind": "TaskAPI",
        "driver": "podman",
        "pod": {"containers": [{"name": "main", "image": test_image, "command": ["sh", "-c",
                "cat /cortex/spec/job.json; echo; cat $TASKAPI_JOB_FILE; echo; echo attempt=$TASKAPI_ATTEMPT"],
                "compute": {"cpu": "500m", "mem": "64Mi"}}]},
    }  # fmt: skip
    gateway.deploy(spec)
    status = gateway.wait_final("boxed", gateway.submit("boxed", {"greeting": "hi"}), timeout=90)
    assert status["status"] == "succeeded", status
    lines = gateway("GET", f"/v1/apis/boxed/tasks/{status['job_id']}/logs").text.splitlines()
    assert json.loads(lines[0])["config"] == {"greeting": "hi"}
    assert json.loads(lines[1])["job_id"] == status["job_id"]
    assert lines[2] == "attempt=1"


def test_container_over_memory_is_worker_oom(gateway: Gateway, test_image: str) -> None:
    spec = {
        "name": "hungry",
        "kind": "TaskAPI",
        "driver": "podman",
        "pod": {"containers": [{"name": "main", "image": test_image,
                "command": ["sh", "-c", "head -c 200000000 /dev/zero | tail > /dev/null"],
                "compute": {"mem": "16Mi"}}]},
    }  # fmt: skip
    gateway.deploy(spec)
    status = gateway.wait_final("hungry", gateway.submit("hungry"), timeout=90)
    assert status["status"] == "worker_oom", status
    assert status["attempts"][-1]["outcome"] == "oom"


def test_container_exit_code(gateway: Gateway, test_image: str) -> None:
    spec = {
        "name": "boxed-fail",
        "kind": "TaskAPI",
        "driver": "podman",
        "pod": {"containers": [{"name": "main", "image": test_image, "command": ["sh", "-c", "exit 4"]}]},
    }
    gateway.deploy(spec)
    status = gateway.wait_final("boxed-fail", gateway.submit("boxed-fail"), timeout=90)
    assert status["status"] == "worker_error" and status["attempts"][0]["exit_code"] == 4


def test_task_sees_container_env_and_argv_without_shell(gateway: Gateway) -> None:
    spec = process_spec("argv", [sys.executable, "-c", "import os, sys; print(sys.argv[1:], os.environ['GREETING'])"])
    spec["pod"]["containers"][0]["args"] = ["$HOME", "a b"]
    spec["pod"]["containers"][0]["env"] = {"GREETING": "hello"}
    gateway.deploy(spec)
    status = gateway.wait_final("argv", gateway.submit("argv"))
    assert gateway("GET", f"/v1/apis/argv/tasks/{status['job_id']}/logs").text == "['$HOME', 'a b'] hello\n"


def test_metrics_count_submissions_across_workers(gateway: Gateway) -> None:
    gateway.deploy(python_spec("counted", "pass"))
    headers = {"Authorization": f"Bearer {gateway.api_key}"}
    # A new connection each time, so gunicorn's workers share the requests between them.
    for _ in range(20):
        assert requests.post(f"{gateway.url}/counted", json={}, headers=headers, timeout=10).status_code == 200
    for _ in range(10):
        text = requests.get(f"{gateway.url}/metrics", headers=headers, timeout=10).text
        assert 'taskapi_tasks_submitted_total{api="counted"} 20.0' in text
    assert "taskapi_http_requests_total" in text and 'taskapi_tasks{api="counted"' in text


def test_metrics_name_the_node_groups_of_each_api(gateway: Gateway) -> None:
    gateway.deploy(python_spec("grouped", "pass", node_groups=["cpu-spot", "gpu-spot"]))
    text = gateway("GET", "/metrics").text
    assert 'taskapi_api_node_group{api="grouped",node_group="cpu-spot"} 1.0' in text
    assert 'taskapi_api_node_group{api="grouped",node_group="gpu-spot"} 1.0' in text
    assert 'taskapi_api_node_group{api="counted"' not in text


def test_openapi_is_generated_from_the_models(gateway: Gateway) -> None:
    doc = gateway("GET", "/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    assert {"/{endpoint}", "/v1/apis/{name}", "/v1/apis/{name}/tasks/{task_id}/logs"} <= set(doc["paths"])
    schemas = doc["components"]["schemas"]
    assert {"SubmitRequest", "TaskRecord", "JobStatus", "Attempt", "TaskAPISpec", "Problem"} <= set(schemas)
    assert set(schemas["TaskStatus"]["enum"]) >= {"pending", "running", "succeeded", "worker_oom", "timed_out"}


def test_spec_asking_more_cpu_than_the_host_is_refused(gateway: Gateway) -> None:
    spec = python_spec("too-big", "pass")
    spec["pod"]["containers"][0]["compute"] = {"cpu": str((os.cpu_count() or 1) * 1000 + 1000) + "m"}
    response = gateway("PUT", "/v1/apis/too-big", json=spec)
    assert response.status_code == 422 and "cpu" in response.json()["detail"].lower()


def test_spec_asking_for_a_gpu_the_host_lacks_is_refused(gateway: Gateway) -> None:
    spec = python_spec("gpu-task", "pass")
    spec["pod"]["containers"][0]["compute"] = {"gpu": 8}
    response = gateway("PUT", "/v1/apis/gpu-task", json=spec)
    assert response.status_code == 422 and "gpu" in response.json()["detail"].lower()


def test_image_that_cannot_be_had_is_unexpected_error(gateway: Gateway, test_image: str) -> None:
    spec = {
        "name": "no-image",
        "kind": "TaskAPI",
        "driver": "podman",
        "retry": {"attempts": 3, "delay": "50ms"},
        "pod": {"containers": [{"name": "main", "image": "localhost/does-not-exist:1", "command": ["true"]}]},
    }
    gateway.deploy(spec)
    status = gateway.wait_final("no-image", gateway.submit("no-image"), timeout=90)
    assert status["status"] == "unexpected_error", status
    assert len(status["attempts"]) == 1 and "did not start" in status["attempts"][0]["message"]
