"""Fixtures for the local backend: a test image built offline, a state directory, a real runner process."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.backends.local.backend import LocalBackend
from gateway.config import Settings
from gateway.models import JobStatus
from gateway.spec import TaskAPISpec, validate_spec
from gateway.task_states import TaskStatus
from tests.conftest import podman_args, wait_for

REPO = Path(__file__).resolve().parents[2]


class Local:
    """A state directory with a backend and a runner process that can be killed and restarted."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        global_args, run_args = podman_args()
        self.env = {
            **os.environ,
            "TASKAPI_STATE_DIR": str(state_dir),
            "TASKAPI_CPUS": "8",
            "TASKAPI_MEMORY": "8Gi",
            "TASKAPI_GPUS": "0",
            "TASKAPI_PODMAN_ARGS": global_args,
            "TASKAPI_PODMAN_RUN_ARGS": run_args,
            "PYTHONPATH": str(REPO),
        }
        self.settings = Settings(
            state_dir=state_dir, cpus=8, memory="8Gi", gpus=0, podman_args=global_args, podman_run_args=run_args
        )
        self.backend = LocalBackend(self.settings)
        self.proc: subprocess.Popen[bytes] | None = None

    def start_runner(self) -> subprocess.Popen[bytes]:
        """Start the runner and wait until the backend reports ready."""
        with open(self.state_dir / "runner.log", "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gateway.backends.local.runner"], env=self.env, stdout=log, stderr=log
            )

        def ready() -> bool:
            try:
                self.backend.check_ready()
            except Exception:
                assert self.proc is not None and self.proc.poll() is None, "the runner exited"
                return False
            return True

        wait_for(ready, what="the runner to be ready")
        return self.proc

    def kill_runner(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to the runner and wait for it to exit."""
        assert self.proc is not None
        self.proc.send_signal(sig)
        self.proc.wait(timeout=20)
        self.proc = None

    def deploy(self, name: str, command: list[str], **extra: Any) -> TaskAPISpec:
        """Deploy a one-container API (process driver unless told otherwise)."""
        container = {"name": "main", "command": command}
        for key in ("image", "env", "compute"):
            if key in extra:
                container[key] = extra.pop(key)
        document = {"name": name, "kind": "TaskAPI", "driver": "process", "pod": {"containers": [container]}}
        document.update(extra)
        spec = validate_spec(document)
        self.backend.deploy(spec)
        return spec

    def wait_final(self, api: str, task_id: str, timeout: float = 30) -> JobStatus:
        """Wait until a task has ended and return it."""

        def done() -> JobStatus | None:
            status = self.backend.get_task(api, task_id)
            return status if status.status.final else None

        return wait_for(done, timeout, f"task {task_id} to end")

    def wait_status(self, api: str, task_id: str, wanted: str, timeout: float = 30) -> JobStatus:
        """Wait until a task reaches ``wanted``."""

        def reached() -> JobStatus | None:
            status = self.backend.get_task(api, task_id)
            return status if status.status.value == wanted else None

        return wait_for(reached, timeout, f"task {task_id} to be {wanted}")

    def close(self) -> None:
        """Stop every task in progress, then the runner, so that nothing outlives the test."""
        if self.proc is not None:
            for api in self.backend.list_apis():
                for status in (TaskStatus.PENDING, TaskStatus.RUNNING):
                    tasks, _ = self.backend.list_tasks(api.name, status, 1000, None)
                    for task in tasks:
                        try:
                            self.backend.stop_task(api.name, task.job_id)
                        except Exception:
                            pass
            wait_for(lambda: not _in_progress(self.backend), 60, "every task to end")
            self.kill_runner(signal.SIGTERM)


def _in_progress(backend: LocalBackend) -> int:
    counts = backend.status_counts()
    return sum(n for (_, status), n in counts.items() if status in ("pending", "running"))


@pytest.fixture
def local() -> Iterator[Local]:
    """A fresh state directory with a running runner.

    Under a short /tmp path: the runner's UNIX socket path must stay within 108 bytes.
    """
    state_dir = Path(tempfile.mkdtemp(prefix="taskapi-"))
    env = Local(state_dir)
    env.start_runner()
    try:
        yield env
    finally:
        env.close()
        shutil.rmtree(state_dir, ignore_errors=True)
