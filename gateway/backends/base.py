"""The port every backend implements, and the errors it may raise.

The HTTP layer speaks only to this port; it maps the errors below to RFC 9457 problems.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.models import ApiInfo, JobStatus, TaskRecord
from gateway.spec import TaskAPISpec
from gateway.task_states import TaskStatus


class BackendError(Exception):
    """Base of the errors a backend reports to the HTTP layer."""

    status = 500
    title = "Backend error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(BackendError):
    """An unknown API, task, attempt or log."""

    status = 404
    title = "Not found"


class Conflict(BackendError):
    """The request clashes with the current state (a stopped task, a reused idempotency key)."""

    status = 409
    title = "Conflict"


class PayloadTooLarge(BackendError):
    """The task record is larger than the backend can carry."""

    status = 413
    title = "Payload too large"


class Unprocessable(BackendError):
    """A valid spec that this backend cannot run (a missing container runtime, too many GPUs)."""

    status = 422
    title = "Cannot run this spec here"


class Unavailable(BackendError):
    """The backend cannot be reached or is failing."""

    status = 503
    title = "Backend unavailable"


def request_hash(config: dict[str, Any], timeout: int | None) -> str:
    """What a replay with the same ``Idempotency-Key`` must match: a digest of the submitted body."""
    body = json.dumps({"config": config, "timeout": timeout}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


@dataclass(frozen=True)
class Submitted:
    """A submission's task record, and whether this call created it (False: idempotent replay)."""

    record: TaskRecord
    created: bool


class Backend(Protocol):
    """What the gateway needs from a backend (DESIGN section 1)."""

    def deploy(self, spec: TaskAPISpec) -> ApiInfo:
        """Create or update a Task API."""

    def get_api(self, name: str) -> ApiInfo:
        """A Task API by name; NotFound if unknown."""

    def api_for_endpoint(self, endpoint: str) -> ApiInfo:
        """The Task API serving ``endpoint``; NotFound if none."""

    def list_apis(self) -> list[ApiInfo]:
        """Every deployed Task API, by name."""

    def delete_api(self, name: str) -> None:
        """Remove a Task API, stopping its tasks in progress; finished tasks stay readable."""

    def submit(
        self,
        api_name: str,
        config: dict[str, Any],
        timeout: int | None,
        idempotency_key: str | None = None,
    ) -> Submitted:
        """Start one task; with an idempotency key already used for the same body, return that task."""

    def get_task(self, api_name: str, task_id: str) -> JobStatus:
        """A task's status and attempts; NotFound if unknown."""

    def list_tasks(
        self, api_name: str, status: TaskStatus | None, limit: int, cursor: str | None
    ) -> tuple[list[JobStatus], str | None]:
        """A page of tasks, newest first, and the cursor of the next page (None at the end)."""

    def stop_task(self, api_name: str, task_id: str) -> None:
        """Stop a task in progress; Conflict if it already ended."""

    def logs(
        self, api_name: str, task_id: str, stream: str, attempt: int | None, follow: bool
    ) -> Iterator[bytes]:
        """An attempt's stdout or stderr; with ``follow``, until the attempt ends."""

    def check_ready(self) -> None:
        """Return if the backend can serve; raise Unavailable otherwise."""

    def status_counts(self) -> dict[tuple[str, str], int]:
        """Number of tasks per (api name, status), for metrics."""
