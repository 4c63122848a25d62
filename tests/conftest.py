"""Fixtures shared by the suite: a real gateway under gunicorn with a real runner, on a free port."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
TEST_IMAGE = "localhost/taskapi-test:latest"
BUSYBOX = Path("/bin/busybox")
BUSYBOX_APPLETS = (
    "sh", "echo", "cat", "sleep", "true", "false", "head", "tail", "dd", "env", "ls", "wc", "grep",
    "printf", "test", "kill", "mkdir", "rm", "touch", "id", "date",
)  # fmt: skip


def require_tool(name: str) -> str:
    """The path of ``name``; in CI a missing tool fails the test instead of skipping it."""
    path = shutil.which(name)
    if path:
        return path
    if IN_CI:
        pytest.fail(f"{name} is required in CI but is not installed")
    pytest.skip(f"{name} is not installed")
    raise AssertionError("unreachable")


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "", interval: float = 0.02) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


class Gateway:
    """A ``taskapi serve`` process (gunicorn + runner) on a free loopback port."""

    def __init__(self, state_dir: Path, api_key: str | None = "test-key", **settings: str) -> None:
        self.state_dir = state_dir
        self.api_key = api_key
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = dict(os.environ)
        self.env.update({f"TASKAPI_{k.upper()}": str(v) for k, v in settings.items()})
        self.env["TASKAPI_API_KEYS"] = api_key or ""
        self.env["TASKAPI_PODMAN_ARGS"], self.env["TASKAPI_PODMAN_RUN_ARGS"] = podman_args()
        self.process: subprocess.Popen[bytes] | None = None
        self.http = requests.Session()
        if api_key:
            self.http.headers["Authorization"] = f"Bearer {api_key}"

    def start(self) -> Gateway:
        """Start serving and wait until ready."""
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from gateway.cli.main import main; main()", "serve",
             "--port", str(self.port), "--state-dir", str(self.state_dir),
             "--workers", self.env.get("TASKAPI_WORKERS", "2")],
            env=self.env,
            start_new_session=True,
        )  # fmt: skip
        wait_for(self._ready, timeout=60, what=f"the gateway at {self.url} to be ready")
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"taskapi serve exited with {self.process.returncode}")
        try:
            return requests.get(f"{self.url}/readyz", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the whole process group (the supervisor, gunicorn and the runner; shims live on)."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            return
        self.process.wait(timeout=30)

    def pid_of(self, name: str) -> int:
        """The pid recorded in ``<state>/<name>.pid`` (runner, gateway, serve)."""
        return int((self.state_dir / f"{name}.pid").read_text().strip())

    def __call__(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 30)
        return self.http.request(method, self.url + path, **kwargs)

    def deploy(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Deploy ``spec`` and return the API's answer."""
        response = self("PUT", f"/v1/apis/{spec['name']}", json=spec)
        assert response.status_code == 200, response.text
        return response.json()

    def submit(self, endpoint: str, config: dict[str, Any] | None = None, **body: Any) -> str:
        """Submit a task and return its ID."""
        response = self("POST", f"/{endpoint}", json={"config": config or {}, **body})
        assert response.status_code == 200, response.text
        return str(response.json()["job_id"])

    def task(self, api: str, task_id: str) -> dict[str, Any]:
        """The task's job_status."""
        response = self("GET", f"/v1/apis/{api}/tasks/{task_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def wait_final(self, api: str, task_id: str, timeout: float = 60) -> dict[str, Any]:
        """Poll until the task has ended; return its job_status."""
        final = {"succeeded", "worker_error", "worker_oom", "timed_out", "stopped", "unexpected_error"}
        return dict(
            wait_for(
                lambda: (t := self.task(api, task_id))["status"] in final and t,
                timeout=timeout,
                what=f"task {task_id} to end",
            )
        )

    def wait_status(self, api: str, task_id: str, status: str, timeout: float = 30) -> dict[str, Any]:
        """Poll until the task reaches ``status``."""
        return dict(
            wait_for(
                lambda: (t := self.task(api, task_id))["status"] == status and t,
                timeout=timeout,
                what=f"task {task_id} to be {status}",
            )
        )


@pytest.fixture(scope="session", autouse=True)
def no_saved_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep a developer's saved gateway (``taskapi cluster up``) out of the tests."""
    previous = os.environ.get("TASKAPI_CONFIG")
    os.environ["TASKAPI_CONFIG"] = str(tmp_path_factory.mktemp("profile") / "config.json")
    yield
    if previous is None:
        os.environ.pop("TASKAPI_CONFIG", None)
    else:
        os.environ["TASKAPI_CONFIG"] = previous


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """One gateway for the session; tests deploy APIs with names of their own."""
    server = Gateway(tmp_path_factory.mktemp("state")).start()
    yield server
    server.stop()


@pytest.fixture
def make_gateway(tmp_path: Path) -> Iterator[Callable[..., Gateway]]:
    """Start gateways of a test's own (for kill and restart scenarios); all are stopped at the end."""
    started: list[Gateway] = []

    def make(state_dir: Path | None = None, **kwargs: Any) -> Gateway:
        server = Gateway(state_dir or tmp_path / "state", **kwargs).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


def podman_args() -> tuple[str, str]:
    """Global and run arguments for podman on this kind of host (``TASKAPI_PODMAN_ARGS`` / ``_RUN_ARGS``).

    With runc rather than crun, and explicit ulimits: the defaults fail inside this sandbox.
    """
    global_args = os.environ.get("TASKAPI_PODMAN_ARGS", "--runtime runc" if shutil.which("runc") else "")
    run_args = os.environ.get("TASKAPI_PODMAN_RUN_ARGS", "--ulimit nofile=1024:1024 --ulimit nproc=1024:1024")
    return global_args, run_args


@pytest.fixture(scope="session")
def test_image(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny busybox image imported into podman (no registry can be pulled from here)."""
    podman = require_tool("podman")
    if not BUSYBOX.exists():
        pytest.fail(f"{BUSYBOX} is missing: install Debian's busybox-static to build the test image")
    global_args = podman_args()[0].split()
    if subprocess.run([podman, *global_args, "image", "exists", TEST_IMAGE], check=False).returncode == 0:
        return TEST_IMAGE
    archive = tmp_path_factory.mktemp("image") / "rootfs.tar"
    with tarfile.open(archive, "w") as tar:
        for folder in ("bin", "tmp", "proc", "sys", "dev", "etc"):
            info = tarfile.TarInfo(folder)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if folder == "tmp" else 0o755
            tar.addfile(info)
        tar.add(BUSYBOX, "bin/busybox")
        for applet in BUSYBOX_APPLETS:
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(info)
    with open(archive, "rb") as source:
        subprocess.run([podman, *global_args, "import", "-", TEST_IMAGE], stdin=source, check=True)
    return TEST_IMAGE


def process_spec(name: str, argv: list[str], **extra: Any) -> dict[str, Any]:
    """A Task API spec running ``argv`` with the process driver."""
    return {
        "name": name,
        "kind": "TaskAPI",
        "driver": "process",
        "pod": {"containers": [{"name": "main", "command": argv}]},
        **extra,
    }


def python_spec(name: str, code: str, **extra: Any) -> dict[str, Any]:
    """A Task API spec running a Python snippet with the process driver."""
    return process_spec(name, [sys.executable, "-c", code], **extra)


# Last: tests/moto_server.py uses the helpers above. One real moto_server for the whole session.
from tests.moto_server import moto_server  # noqa: E402, F401
