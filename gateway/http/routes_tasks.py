"""Cortex-compatible task endpoints: ``POST|GET|DELETE /<endpoint>``."""

from __future__ import annotations

from flask import Response, jsonify, request
from flask_openapi3 import OpenAPI, Tag

from gateway.backends.base import Backend
from gateway.config import Settings
from gateway.http import metrics
from gateway.http.openapi import request_body
from gateway.http.params import EndpointPath, JobQuery
from gateway.http.requests import api_name, idempotency_key, json_body, task_id
from gateway.models import Problem, StopResponse, SubmitRequest, TaskRecord, TaskStatusResponse

TAG = Tag(name="tasks", description="Submit, read and stop tasks (Cortex Task API compatible)")


def register_task_routes(app: OpenAPI, backend: Backend, settings: Settings) -> None:
    """Add the task endpoints."""

    def base_url() -> str:
        return (settings.public_url or request.host_url).rstrip("/")

    @app.post(
        "/<endpoint>",
        tags=[TAG],
        responses={200: TaskRecord, 400: Problem, 404: Problem, 409: Problem, 413: Problem, 422: Problem},
        security=[{"bearer": []}],
        openapi_extensions={
            **request_body(app, SubmitRequest, ("application/json",)),
            "parameters": [
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string", "maxLength": 255},
                    "description": "The same key for the same API returns the same task.",
                }
            ],
        },
    )
    def submit(path: EndpointPath) -> Response:
        """Start one task; answers at once with its record."""
        api = backend.api_for_endpoint(api_name(path.endpoint))
        body = json_body(SubmitRequest)
        key = idempotency_key()
        submitted = backend.submit(api.name, body.config, body.timeout, key)
        if submitted.created:
            metrics.SUBMITTED.labels(api.name).inc()
        return jsonify(submitted.record.model_dump(mode="json"))

    @app.get(
        "/<endpoint>",
        tags=[TAG],
        responses={200: TaskStatusResponse, 404: Problem, 422: Problem},
        security=[{"bearer": []}],
    )
    def status(path: EndpointPath, query: JobQuery) -> Response:
        """A task's status and attempts."""
        api = backend.api_for_endpoint(api_name(path.endpoint))
        job = backend.get_task(api.name, task_id(api.name, query.jobID))
        answer = TaskStatusResponse(job_status=job, endpoint=f"{base_url()}/{path.endpoint}?jobID={job.job_id}")
        return jsonify(answer.model_dump(mode="json"))

    @app.delete(
        "/<endpoint>",
        tags=[TAG],
        responses={200: StopResponse, 404: Problem, 409: Problem},
        security=[{"bearer": []}],
    )
    def stop(path: EndpointPath, query: JobQuery) -> Response:
        """Stop a task in progress (409 if it already ended)."""
        api = backend.api_for_endpoint(api_name(path.endpoint))
        job_id = task_id(api.name, query.jobID)
        backend.stop_task(api.name, job_id)
        return jsonify(StopResponse(message=f"stopped job {job_id}").model_dump())
