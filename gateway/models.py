"""Request and response models of the HTTP contract (DESIGN section 3).

The same models validate requests, shape responses and generate ``/openapi.json``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from gateway.task_states import Outcome, TaskStatus


def _unset(value: object) -> bool:
    return value is None


class SubmitRequest(BaseModel):
    """Body of ``POST /<endpoint>``."""

    model_config = ConfigDict(extra="forbid")

    config: dict[str, Any] = Field(default_factory=dict, description="Handed to the task in its job file.")
    timeout: int | None = Field(
        None, strict=True, gt=0, le=30 * 24 * 3600, description="Seconds from submission; default the API's timeout."
    )


class TaskRecord(BaseModel):
    """A task as submitted (Cortex's job record)."""

    job_id: str
    api_name: str
    kind: str = "TaskAPI"
    workers: int = 1
    config: dict[str, Any]
    timeout: int
    start_time: str = Field(description="Submission time, RFC 3339 UTC.")


class Attempt(BaseModel):
    """One run of a task."""

    attempt: int
    node: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    exit_code: int | None = None
    outcome: Outcome | None = Field(None, description="Unset while the attempt runs.")
    message: str | None = None


class JobStatus(TaskRecord):
    """A task with its status and attempts."""

    status: TaskStatus
    end_time: str | None = Field(None, exclude_if=_unset, description="Only once the task has ended.")
    worker_counts: dict[str, int] | None = Field(None, exclude_if=_unset, description="Only while in progress.")
    attempts: list[Attempt] = Field(default_factory=list)
    message: str | None = Field(None, exclude_if=_unset, description="Why a task waits, or how it failed.")


class TaskStatusResponse(BaseModel):
    """Answer of ``GET /<endpoint>?jobID=``."""

    job_status: JobStatus
    endpoint: str


class StopResponse(BaseModel):
    """Answer of ``DELETE /<endpoint>?jobID=``."""

    message: str


class TaskList(BaseModel):
    """A page of tasks, newest first."""

    tasks: list[JobStatus]
    next_cursor: str | None = Field(None, description="Pass as ?cursor= for the next page; absent at the end.")


class ApiInfo(BaseModel):
    """A deployed Task API."""

    name: str
    endpoint: str
    spec: dict[str, Any]
    created_at: str
    updated_at: str


class ApiList(BaseModel):
    """All deployed Task APIs."""

    apis: list[ApiInfo]


class Problem(BaseModel):
    """An RFC 9457 problem detail."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    errors: list[dict[str, Any]] | None = Field(None, description="Each invalid field: path and message.")
