"""The ``taskapi`` CLI and the Python SDK against a real HTTP server.

The server is a small Flask app on a free port that answers in the shapes of DESIGN section 3 (task records,
``job_status`` objects, pages with cursors, RFC 9457 problems, streamed logs). It checks how the client
builds requests and how the CLI parses and prints answers; the gateway's own behaviour is tested elsewhere.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from flask import Flask, Response, jsonify, request
from werkzeug.serving import make_server

from gateway.cli.main import cli
from gateway.cli.tasks import Progress
from gateway.client import GatewayUnreachable, TaskAPIClient, TaskAPIError
from tests.conftest import Gateway, free_port, python_spec, wait_for

NOW = "2026-12-04T16:00:00Z"
DONE_ID = "0123456789abcdef"
RUNNING_ID = "69b377c15a1314be"
FAILING_ID = "fedcba9876543210"
QUEUED_ID = "aaaaaaaaaaaaaaaa"


def problem(status: int, title: str, detail: str, errors: list[dict[str, str]] | None = None) -> Response:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    if errors:
        body["errors"] = errors
    return Response(json.dumps(body), status=status, mimetype="application/problem+json")


def job_status(task_id: str, status: str, attempts: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "job_id": task_id,
        "api_name": "trainer",
        "kind": "TaskAPI",
        "workers": 1,
        "config": {"lr": 0.1},
        "timeout": 3600,
        "start_time": NOW,
        "status": status,
        "attempts": attempts,
        **extra,
    }


def attempt(n: int, outcome: str | None, exit_code: int | None = None, message: str | None = None) -> dict[str, Any]:
    ended = None if outcome is None else "2026-12-04T16:00:42.123456+00:00"
    return {
        "attempt": n,
        "node": "node-1",
        "started_at": "2026-12-04T16:00:01Z",
        "ended_at": ended,
        "exit_code": exit_code,
        "outcome": outcome,
        "message": message,
    }


@dataclass
class FakeGateway:
    """What the server holds and what it was sent."""

    url: str
    apis: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Successive answers to GET .../tasks/<id>; the last one repeats.
    scripts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    log_gate: threading.Event = field(default_factory=threading.Event)
    log_gate_timed_out: bool = False

    def seen(self, method: str, path_prefix: str = "/") -> list[dict[str, Any]]:
        return [r for r in self.requests if r["method"] == method and r["path"].startswith(path_prefix)]


def build_app(state: FakeGateway) -> Flask:
    app = Flask("fake-gateway")

    def api_or_404(name: str) -> dict[str, Any] | None:
        return state.apis.get(name)

    def not_found_api(name: str) -> Response:
        return problem(404, "Not found", f"no Task API named {name!r}")

    @app.before_request
    def record() -> None:
        state.requests.append(
            {
                "method": request.method,
                "path": request.path,
                "args": dict(request.args),
                "headers": dict(request.headers),
                "body": request.get_data(as_text=True),
            }
        )

    @app.errorhandler(404)
    def unknown_route(_error: Exception) -> Response:
        return problem(404, "Not found", f"no route {request.path}")

    @app.get("/v1/apis")
    def list_apis() -> Response:
        return jsonify(apis=[state.apis[name] for name in sorted(state.apis)])

    @app.put("/v1/apis/<name>")
    def put_api(name: str) -> Response:
        spec = request.get_json()
        if name == "gpu-heavy":
            return problem(
                422,
                "Cannot run this spec here",
                "the host has no GPU",
                [{"path": "pod.containers[0].compute.gpu", "message": "1 GPU asked, 0 available"}],
            )
        endpoint = (spec.get("networking") or {}).get("endpoint") or name
        state.apis[name] = {"name": name, "endpoint": endpoint, "spec": spec, "created_at": NOW, "updated_at": NOW}
        return jsonify(state.apis[name])

    @app.get("/v1/apis/<name>")
    def get_api(name: str) -> Response:
        info = api_or_404(name)
        return jsonify(info) if info else not_found_api(name)

    @app.delete("/v1/apis/<name>")
    def delete_api(name: str) -> Response:
        if not state.apis.pop(name, None):
            return not_found_api(name)
        return jsonify(message=f"deleted {name}")

    @app.get("/v1/apis/<name>/tasks")
    def list_tasks(name: str) -> Response:
        if not api_or_404(name):
            return not_found_api(name)
        tasks = [script[-1] for script in state.scripts.values() if script[-1]["api_name"] == name]
        if request.args.get("status"):
            tasks = [t for t in tasks if t["status"] == request.args["status"]]
        start = int(request.args.get("cursor") or 0)
        limit = int(request.args.get("limit", 50))
        page = tasks[start : start + limit]
        more = start + limit < len(tasks)
        return jsonify(tasks=page, next_cursor=str(start + limit) if more else None)

    @app.get("/v1/apis/<name>/tasks/<task_id>")
    def get_task(name: str, task_id: str) -> Response:
        script = state.scripts.get(task_id)
        if not api_or_404(name) or not script:
            return problem(404, "Not found", f"no task {task_id} in {name}")
        return jsonify(script.pop(0) if len(script) > 1 else script[0])

    @app.get("/v1/apis/<name>/tasks/<task_id>/logs")
    def logs(name: str, task_id: str) -> Response:
        def chunks() -> Iterator[bytes]:
            yield b"epoch 1 loss=0.9\n"
            # The second chunk waits for the test to have seen the first: it proves the client streams.
            if not state.log_gate.wait(10):
                state.log_gate_timed_out = True
            yield b"epoch 2 loss=0.5\n\xff\n"

        return Response(chunks(), mimetype="text/plain")

    def api_for_endpoint(endpoint: str) -> dict[str, Any] | None:
        return next((info for info in state.apis.values() if info["endpoint"] == endpoint), None)

    @app.post("/<endpoint>")
    def submit(endpoint: str) -> Response:
        info = api_for_endpoint(endpoint)
        if not info:
            return problem(404, "Not found", f"no Task API at /{endpoint}")
        body = request.get_json()
        record = {
            "job_id": RUNNING_ID,
            "api_name": info["name"],
            "kind": "TaskAPI",
            "workers": 1,
            "config": body.get("config", {}),
            "timeout": body.get("timeout") or 3600,
            "start_time": NOW,
        }
        return jsonify(record)

    @app.delete("/<endpoint>")
    def stop(endpoint: str) -> Response:
        task_id = request.args["jobID"]
        if not api_for_endpoint(endpoint):
            return problem(404, "Not found", f"no Task API at /{endpoint}")
        if state.scripts[task_id][-1]["status"] not in ("pending", "running"):
            return problem(409, "Conflict", f"task {task_id} already ended")
        return jsonify(message=f"stopped job {task_id}")

    return app


@pytest.fixture
def server() -> Iterator[FakeGateway]:
    port = free_port()
    state = FakeGateway(url=f"http://127.0.0.1:{port}")
    httpd = make_server("127.0.0.1", port, build_app(state), threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state
    state.log_gate.set()
    httpd.shutdown()
    thread.join(5)


@pytest.fixture
def trainer(server: FakeGateway) -> FakeGateway:
    """The server with one API whose endpoint differs from its name, and four tasks."""
    server.apis["trainer"] = {
        "name": "trainer",
        "endpoint": "train",
        "spec": {},
        "created_at": NOW,
        "updated_at": NOW,
    }
    server.scripts[RUNNING_ID] = [
        job_status(RUNNING_ID, "pending", [], message="waiting for capacity"),
        job_status(RUNNING_ID, "running", [attempt(1, None)]),
        job_status(RUNNING_ID, "running", [attempt(1, "preempted"), attempt(2, None)]),
    ]
    server.scripts[DONE_ID] = [
        job_status(DONE_ID, "succeeded", [attempt(1, "succeeded", 0)], end_time="2026-12-04T16:00:42Z"),
    ]
    server.scripts[FAILING_ID] = [
        job_status(FAILING_ID, "running", [attempt(1, None)]),
        job_status(FAILING_ID, "worker_error", [attempt(1, "failed", 3)], end_time="2026-12-04T16:00:42Z"),
    ]
    server.scripts[QUEUED_ID] = [job_status(QUEUED_ID, "pending", [], message="waiting for capacity")]
    return server


def run(server: FakeGateway, *args: str, input: str | None = None, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(cli, ["--url", server.url, *args], input=input, env=env, catch_exceptions=False)


TWO_SPECS = textwrap.dedent(
    """\
    - name: trainer
      kind: TaskAPI
      networking: {endpoint: train}
      pod:
        containers:
          - name: main
            image: quay.io/org/trainer:1.2
            command: ["python", "train.py"]
            compute: {cpu: 1, mem: 2Gi}
      retry: {attempts: 2, delay: 10s}
    - name: exporter
      kind: TaskAPI
      driver: process
      pod:
        containers:
          - name: main
            command: ["/bin/echo", "done"]
    """
)


def test_deploy_a_list_file_puts_each_spec_as_json(server: FakeGateway, tmp_path: Path) -> None:
    path = tmp_path / "apis.yaml"
    path.write_text(TWO_SPECS)

    result = run(server, "deploy", str(path))

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"trainer deployed: POST {server.url}/train",
        f"exporter deployed: POST {server.url}/exporter",
    ]
    puts = server.seen("PUT")
    assert [r["path"] for r in puts] == ["/v1/apis/trainer", "/v1/apis/exporter"]
    assert all(r["headers"]["Content-Type"] == "application/json" for r in puts)
    # The documents go as written: the gateway applies its own defaults.
    assert json.loads(puts[0]["body"])["retry"] == {"attempts": 2, "delay": "10s"}
    assert "timeout" not in json.loads(puts[1]["body"])


def test_deploy_from_stdin_with_json_output(server: FakeGateway) -> None:
    spec = {"name": "one", "kind": "TaskAPI", "pod": {"containers": [{"name": "main", "command": ["true"]}]}}

    result = run(server, "deploy", "-", "-o", "json", input=json.dumps(spec))

    assert result.exit_code == 0, result.output
    [info] = json.loads(result.stdout)
    assert info["name"] == "one" and info["endpoint"] == "one" and info["spec"] == spec


def test_invalid_spec_is_reported_with_paths_and_nothing_is_sent(server: FakeGateway, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        TWO_SPECS.replace('command: ["python", "train.py"]', "args: []").replace("name: exporter", "name: Exporter")
    )

    result = run(server, "deploy", str(path))

    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0] == "error: Invalid spec: 2 problems; nothing was sent to the gateway"
    assert "  trainer.pod.containers[0].command: required field is missing" in lines
    assert any(line.startswith("  [1].name: 'Exporter' is not a DNS label") for line in lines)
    assert "Traceback" not in result.output
    assert server.requests == []


def test_broken_json_file_gets_a_json_error(server: FakeGateway, tmp_path: Path) -> None:
    path = tmp_path / "api.json"
    path.write_text('{"name": "x", "kind": "TaskAPI",}')

    result = run(server, "deploy", str(path))

    assert result.exit_code == 1
    assert "not valid JSON: Expecting property name" in result.stderr
    assert server.requests == []


def test_a_problem_with_field_errors_stops_deploy_and_says_what_was_deployed(
    server: FakeGateway, tmp_path: Path
) -> None:
    path = tmp_path / "apis.yaml"
    path.write_text(TWO_SPECS.replace("name: exporter", "name: gpu-heavy"))

    result = run(server, "deploy", str(path))

    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "deployed before the error: trainer",
        "error: Cannot run this spec here: the host has no GPU",
        "  pod.containers[0].compute.gpu: 1 GPU asked, 0 available",
    ]


def test_submit_with_inline_config_uses_the_api_endpoint(trainer: FakeGateway) -> None:
    result = run(
        trainer,
        "--api-key",
        "s3cret",
        "submit",
        "trainer",
        "--config",
        '{"lr": 0.1, "epochs": 3}',
        "--timeout",
        "600",
        "--idempotency-key",
        "run-42",
    )

    assert result.exit_code == 0, result.output
    assert result.stdout == f"{RUNNING_ID}\n"
    [post] = trainer.seen("POST")
    assert post["path"] == "/train"
    assert json.loads(post["body"]) == {"config": {"lr": 0.1, "epochs": 3}, "timeout": 600}
    assert post["headers"]["Idempotency-Key"] == "run-42"
    assert post["headers"]["Authorization"] == "Bearer s3cret"


def test_submit_with_config_from_a_file_and_json_output(trainer: FakeGateway, tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"dataset": "s3://bucket/data", "nested": {"a": [1, 2]}}))

    result = run(trainer, "-o", "json", "submit", "trainer", "--config", f"@{config}")

    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["job_id"] == RUNNING_ID
    assert record["config"] == {"dataset": "s3://bucket/data", "nested": {"a": [1, 2]}}
    assert "timeout" not in json.loads(trainer.seen("POST")[0]["body"])


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("{lr: 0.1}", "not valid JSON"),
        ("[1, 2]", "the config must be a JSON object"),
        ("@/nonexistent/config.json", "cannot read /nonexistent/config.json: No such file or directory"),
    ],
)
def test_a_bad_config_is_a_usage_error(trainer: FakeGateway, config: str, message: str) -> None:
    result = run(trainer, "submit", "trainer", "--config", config)

    assert result.exit_code == 2
    assert message in result.stderr
    assert trainer.seen("POST") == []


def test_submit_wait_follows_the_status_and_exits_0_on_success(trainer: FakeGateway) -> None:
    trainer.scripts[RUNNING_ID].append(
        job_status(RUNNING_ID, "succeeded", [attempt(1, "preempted"), attempt(2, "succeeded", 0)])
    )

    result = run(trainer, "submit", "trainer", "--wait")

    assert result.exit_code == 0, result.output
    assert result.stdout == f"{RUNNING_ID}\n"
    # Not a terminal: one plain line per change, then the outcome.
    lines = result.stderr.splitlines()
    assert lines[0] == f"{RUNNING_ID} pending 0s: waiting for capacity"
    assert lines[1].startswith(f"{RUNNING_ID} running (attempt 1) ")
    assert lines[2].startswith(f"{RUNNING_ID} running (attempt 2) ")
    assert lines[3].startswith(f"{RUNNING_ID} succeeded (attempt 2) ")
    assert len(lines) == 4
    assert "\r" not in result.stderr


def test_submit_wait_exits_1_when_the_task_fails(trainer: FakeGateway) -> None:
    trainer.scripts[RUNNING_ID] = trainer.scripts.pop(FAILING_ID)

    result = run(trainer, "-o", "json", "submit", "trainer", "--wait")

    assert result.exit_code == 1
    assert json.loads(result.stdout)["status"] == "worker_error"
    assert result.stderr.splitlines()[-1].endswith(": exit code 3")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_the_status_line_is_refreshed_in_place(trainer: FakeGateway) -> None:
    screen = Terminal()
    progress = Progress(screen)
    script = trainer.scripts[FAILING_ID]

    progress.update(script[0])
    progress.update(script[0])
    progress.finish(script[1])

    assert screen.getvalue() == (
        f"\r\x1b[K⠋ {FAILING_ID} running (attempt 1) 0s"
        + f"\r\x1b[K⠙ {FAILING_ID} running (attempt 1) 0s"
        + "\r\x1b[K"
        + f"{FAILING_ID} worker_error (attempt 1) 0s: exit code 3\n"
    )


def test_get_lists_apis_with_tasks_in_progress(trainer: FakeGateway) -> None:
    trainer.apis["idle"] = {**trainer.apis["trainer"], "name": "idle", "endpoint": "idle"}

    result = run(trainer, "get")

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "NAME     ENDPOINT                      PENDING  RUNNING  UPDATED",
        f"idle     {trainer.url}/idle   0        0        2026-12-04 16:00:00Z",
        f"trainer  {trainer.url}/train  1        1        2026-12-04 16:00:00Z",
    ]


def test_get_api_lists_its_tasks(trainer: FakeGateway) -> None:
    result = run(trainer, "get", "trainer", "--limit", "2")

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "ID                STATUS     ATTEMPTS  SUBMITTED             ENDED",
        f"{RUNNING_ID}  running    2         2026-12-04 16:00:00Z  -",
        f"{DONE_ID}  succeeded  1         2026-12-04 16:00:00Z  2026-12-04 16:00:42Z",
    ]
    assert "--limit shows more" in result.stderr
    assert trainer.seen("GET", "/v1/apis/trainer/tasks")[0]["args"] == {"limit": "2"}


def test_get_task_shows_its_attempts(trainer: FakeGateway) -> None:
    trainer.scripts[FAILING_ID].pop(0)

    result = run(trainer, "get", "trainer", FAILING_ID)

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"task:       {FAILING_ID}",
        "api:        trainer",
        "status:     worker_error",
        "submitted:  2026-12-04 16:00:00Z",
        "ended:      2026-12-04 16:00:42Z",
        "timeout:    1h00m",
        'config:     {"lr":0.1}',
        "",
        "ATTEMPT  NODE    STARTED               ENDED                 EXIT  OUTCOME  MESSAGE",
        "1        node-1  2026-12-04 16:00:01Z  2026-12-04 16:00:42Z  3     failed   -",
    ]


def test_json_output_is_the_gateways_answer(trainer: FakeGateway) -> None:
    apis = json.loads(run(trainer, "-o", "json", "get").stdout)
    assert [info["name"] for info in apis["apis"]] == ["trainer"]
    page = json.loads(run(trainer, "get", "trainer", "-o", "json", "--status", "succeeded").stdout)
    assert [t["job_id"] for t in page["tasks"]] == [DONE_ID] and page["next_cursor"] is None
    task = json.loads(run(trainer, "get", "trainer", DONE_ID, "-o", "json").stdout)
    assert task == trainer.scripts[DONE_ID][0]


def test_stop_and_delete(trainer: FakeGateway) -> None:
    result = run(trainer, "stop", "trainer", RUNNING_ID)
    assert (result.exit_code, result.stdout) == (0, f"stopped job {RUNNING_ID}\n")
    assert trainer.seen("DELETE", "/train")[0]["args"] == {"jobID": RUNNING_ID}

    result = run(trainer, "delete", "trainer", "-o", "json")
    assert (result.exit_code, json.loads(result.stdout)) == (0, {"message": "deleted trainer"})
    assert "trainer" not in trainer.apis


def test_a_problem_is_printed_with_its_detail_and_exit_code_1(trainer: FakeGateway) -> None:
    result = run(trainer, "stop", "trainer", DONE_ID)
    assert result.exit_code == 1
    assert result.stderr == f"error: Conflict: task {DONE_ID} already ended\n"
    assert result.stdout == ""

    result = run(trainer, "get", "nope", "0000000000000000")
    assert (result.exit_code, result.stderr) == (1, "error: Not found: no task 0000000000000000 in nope\n")

    result = run(trainer, "submit", "nope")
    assert (result.exit_code, result.stderr) == (1, "error: Not found: no Task API named 'nope'\n")


def test_an_unreachable_gateway_is_named(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"

    result = CliRunner().invoke(cli, ["get"], env={"TASKAPI_URL": url}, catch_exceptions=False)

    assert result.exit_code == 1
    assert result.stderr == f"error: cannot reach the gateway at {url}: Connection refused\n"


def test_a_server_that_is_not_a_gateway_is_reported(tmp_path: Path) -> None:
    app = Flask("not-a-gateway")
    app.add_url_rule("/v1/apis", view_func=lambda: "<html>hello</html>")
    port = free_port()
    httpd = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        result = CliRunner().invoke(cli, ["--url", f"http://127.0.0.1:{port}", "get"], catch_exceptions=False)
        assert result.exit_code == 1
        assert "did not answer JSON; is http://127.0.0.1:" in result.stderr

        result = CliRunner().invoke(cli, ["--url", f"http://127.0.0.1:{port}", "delete", "x"])
        assert (result.exit_code, result.stderr) == (1, "error: HTTP 404 NOT FOUND\n")
    finally:
        httpd.shutdown()
        thread.join(5)


def test_logs_are_written_as_they_come(trainer: FakeGateway) -> None:
    env = {**os.environ, "TASKAPI_URL": trainer.url}
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "logs", "trainer", RUNNING_ID, "-f", "--stderr", "--attempt", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        assert process.stdout is not None
        # The server holds the second chunk back until this first one has reached our end of the pipe.
        first = os.read(process.stdout.fileno(), 1024)
        assert first == b"epoch 1 loss=0.9\n"
        assert not trainer.log_gate_timed_out
        trainer.log_gate.set()
        rest, errors = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, errors
    # Bytes pass through as they are, even when not UTF-8.
    assert rest == b"epoch 2 loss=0.5\n\xff\n"
    [request] = trainer.seen("GET", f"/v1/apis/trainer/tasks/{RUNNING_ID}/logs")
    assert request["args"] == {"stream": "stderr", "attempt": "2", "follow": "true"}


def test_sdk_pages_through_tasks_and_streams_logs(trainer: FakeGateway) -> None:
    client = TaskAPIClient(trainer.url)

    listed = [t["job_id"] for t in client.iter_tasks("trainer", page_size=1)]
    assert listed == [RUNNING_ID, DONE_ID, FAILING_ID, QUEUED_ID]
    assert len(trainer.seen("GET", "/v1/apis/trainer/tasks")) == 4

    chunks = client.logs("trainer", DONE_ID)
    assert next(chunks) == b"epoch 1 loss=0.9\n"
    trainer.log_gate.set()
    assert b"".join(chunks) == b"epoch 2 loss=0.5\n\xff\n"

    with pytest.raises(TaskAPIError) as error:
        client.get_api("missing")
    assert (error.value.status, error.value.title) == (404, "Not found")


def test_sdk_deploy_and_submit(server: FakeGateway) -> None:
    client = TaskAPIClient(server.url, api_key="k")

    infos = client.deploy(TWO_SPECS)
    assert [info["endpoint"] for info in infos] == ["train", "exporter"]
    record = client.submit("trainer", {"lr": 1})
    assert record["config"] == {"lr": 1}
    # The endpoint is looked up once and then cached.
    client.submit("trainer", {"lr": 2})
    assert len(server.seen("GET", "/v1/apis/trainer")) == 1

    with pytest.raises(TaskAPIError) as error:
        client.deploy("- name: a\n  kind: TaskAPI\n")
    assert error.value.status is None
    assert error.value.errors == [{"path": "pod", "message": "required field is missing"}]


def test_sdk_follows_an_endpoint_moved_by_a_redeploy(trainer: FakeGateway) -> None:
    client = TaskAPIClient(trainer.url)
    client.submit("trainer")
    trainer.apis["trainer"]["endpoint"] = "train-v2"

    assert client.submit("trainer")["job_id"] == RUNNING_ID
    assert [r["path"] for r in trainer.seen("POST")] == ["/train", "/train", "/train-v2"]


def test_sdk_wait_times_out(trainer: FakeGateway) -> None:
    client = TaskAPIClient(trainer.url)
    seen: list[str] = []

    with pytest.raises(TimeoutError, match=f"task {RUNNING_ID} is still running after 0.2s"):
        client.wait("trainer", RUNNING_ID, timeout=0.2, poll=0.05, on_update=lambda t: seen.append(t["status"]))
    assert seen[:2] == ["pending", "running"]

    final = client.wait("trainer", DONE_ID, poll=0.01)
    assert final["status"] == "succeeded"


def test_sdk_unreachable_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(GatewayUnreachable, match=f"cannot reach the gateway at {url}: Connection refused"):
        TaskAPIClient(url).list_apis()


def test_serve_rejects_bad_settings_before_starting() -> None:
    result = CliRunner().invoke(cli, ["serve"], env={"TASKAPI_WORKERS": "many"})
    assert result.exit_code == 2
    assert "invalid settings: TASKAPI_WORKERS: Input should be a valid integer" in result.stderr


def test_serve_refuses_beyond_loopback_without_keys(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["serve", "--host", "0.0.0.0", "--state-dir", str(tmp_path)], env={"TASKAPI_API_KEYS": ""}
    )
    assert result.exit_code == 1
    assert result.stderr.startswith("error: refusing to serve on 0.0.0.0 without API keys")


def test_a_second_runner_on_the_same_state_is_refused(tmp_path: Path) -> None:
    state = Path(tempfile.mkdtemp(prefix="taskapi-"))
    env = {**os.environ, "TASKAPI_STATE_DIR": str(state)}
    first = subprocess.Popen([sys.executable, "-m", "gateway.backends.local.runner"], env=env)
    try:
        wait_for(lambda: (state / "runner.pid").exists(), what="the first runner")
        result = CliRunner().invoke(cli, ["runner", "--state-dir", str(state)])
        assert result.exit_code == 1
        assert result.stderr.startswith("error: another runner")
    finally:
        first.terminate()
        first.wait(timeout=20)
        shutil.rmtree(state, ignore_errors=True)


# The same commands against the real gateway (gunicorn, the local runner, real processes).

GREET = (
    "import json, os; job = json.load(open(os.environ['TASKAPI_JOB_FILE'])); "
    "print('hello', job['config']['who'], flush=True)"
)


def cli_of(gateway: Gateway) -> Any:
    def invoke(*args: str) -> Any:
        command = ["--url", gateway.url, "--api-key", gateway.api_key or "", *args]
        return CliRunner().invoke(cli, command, catch_exceptions=False)

    return invoke


def test_deploy_submit_wait_logs_get_against_the_gateway(gateway: Gateway, tmp_path: Path) -> None:
    taskapi = cli_of(gateway)
    specs = [
        python_spec("cli-greet", GREET),
        python_spec(
            "cli-fail",
            "import sys; print('bad', file=sys.stderr); sys.exit(4)",
            networking={"endpoint": "cli-fail-here"},
        ),
    ]
    path = tmp_path / "apis.yaml"
    path.write_text(yaml.safe_dump(specs))

    result = taskapi("deploy", str(path))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1] == f"cli-fail deployed: POST {gateway.url}/cli-fail-here"

    result = taskapi("submit", "cli-greet", "--config", '{"who": "world"}', "--wait")
    assert result.exit_code == 0, result.output
    task_id = result.stdout.strip()
    assert result.stderr.splitlines()[-1].startswith(f"{task_id} succeeded (attempt 1) ")
    assert taskapi("logs", "cli-greet", task_id).stdout == "hello world\n"
    status = json.loads(taskapi("get", "cli-greet", task_id, "-o", "json").stdout)
    assert status["status"] == "succeeded" and status["config"] == {"who": "world"}
    assert f"{task_id}  succeeded  1" in taskapi("get", "cli-greet").stdout
    listing = taskapi("get").stdout
    assert any(line.split()[:2] == ["cli-fail", f"{gateway.url}/cli-fail-here"] for line in listing.splitlines())

    result = taskapi("-o", "json", "submit", "cli-fail", "--wait")
    assert result.exit_code == 1
    failed = json.loads(result.stdout)
    assert failed["status"] == "worker_error"
    assert result.stderr.splitlines()[-1].endswith(": exit code 4")
    assert taskapi("logs", "cli-fail", failed["job_id"], "--stderr").stdout == "bad\n"

    result = taskapi("stop", "cli-fail", failed["job_id"])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: Conflict: task {failed['job_id']} already ended")

    result = taskapi("delete", "cli-greet")
    assert (result.exit_code, result.stdout) == (0, "deleted cli-greet\n")
    result = taskapi("submit", "cli-greet")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: Not found: ") and "cli-greet" in result.stderr


def test_stop_and_follow_logs_against_the_gateway(gateway: Gateway, tmp_path: Path) -> None:
    taskapi = cli_of(gateway)
    release = tmp_path / "release"
    code = (
        "import os, time; print('started', flush=True)\n"
        f"while not os.path.exists({str(release)!r}): time.sleep(0.05)\n"
        "print('released', flush=True)"
    )
    gateway.deploy(python_spec("cli-follow", code))
    task_id = taskapi("submit", "cli-follow").stdout.strip()
    gateway.wait_status("cli-follow", task_id, "running")

    env = {**os.environ, "TASKAPI_URL": gateway.url, "TASKAPI_API_KEY": gateway.api_key or ""}
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "logs", "cli-follow", task_id, "--follow"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == b"started\n"
        release.touch()
        rest, errors = process.communicate(timeout=60)
    finally:
        process.kill()
    assert (process.returncode, rest) == (0, b"released\n"), errors

    gateway.deploy(python_spec("cli-sleep", "import time; time.sleep(300)"))
    task_id = taskapi("submit", "cli-sleep").stdout.strip()
    result = taskapi("stop", "cli-sleep", task_id)
    assert (result.exit_code, result.stdout) == (0, f"stopped job {task_id}\n")
    assert gateway.wait_final("cli-sleep", task_id)["status"] == "stopped"


def test_a_wrong_key_is_reported(gateway: Gateway) -> None:
    result = CliRunner().invoke(cli, ["--url", gateway.url, "--api-key", "wrong", "get"], catch_exceptions=False)

    assert result.exit_code == 1
    assert result.stderr.startswith("error: Unauthorized")
    assert result.stdout == ""
