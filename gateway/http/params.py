"""Models of path, query and header parameters; flask-openapi3 validates them and documents them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.task_states import TaskStatus


class EndpointPath(BaseModel):
    """A Task API's endpoint segment."""

    endpoint: str


class JobQuery(BaseModel):
    """Cortex's ``?jobID=`` parameter."""

    jobID: str = Field(description="The task's ID.")


class ApiPath(BaseModel):
    """A Task API's name."""

    name: str


class TaskPath(BaseModel):
    """A task of a Task API."""

    name: str
    task_id: str


class ListQuery(BaseModel):
    """Filters and paging of a task list."""

    model_config = ConfigDict(extra="forbid")

    status: TaskStatus | None = None
    limit: int = Field(50, ge=1, le=500)
    cursor: str | None = Field(None, max_length=64)


class LogsQuery(BaseModel):
    """Which log to read."""

    model_config = ConfigDict(extra="forbid")

    stream: Literal["stdout", "stderr"] = "stdout"
    attempt: int | None = Field(None, ge=1, description="Default: the latest attempt.")
    follow: bool = Field(False, description="Keep streaming until the attempt ends.")
