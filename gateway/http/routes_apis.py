"""The management API under ``/v1``: Task APIs and their tasks."""

from __future__ import annotations

from flask import Response, jsonify, request, stream_with_context
from flask_openapi3 import OpenAPI, Tag

from gateway.backends.base import Backend
from gateway.http.openapi import request_body
from gateway.http.params import ApiPath, ListQuery, LogsQuery, TaskPath
from gateway.http.problems import ProblemError
from gateway.http.requests import api_name, task_id
from gateway.models import ApiInfo, ApiList, JobStatus, Problem, TaskList
from gateway.spec import SpecError, TaskAPISpec, load_documents, validate_spec

TAG = Tag(name="management", description="Deploy Task APIs and inspect their tasks")
SPEC_TYPES = ("application/json", "application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "")
ERRORS = {404: Problem, 422: Problem}


def _spec_from_body(name: str) -> TaskAPISpec:
    if request.mimetype not in SPEC_TYPES:
        raise ProblemError(415, f"send the spec as application/json or application/yaml, not {request.mimetype}")
    try:
        documents = load_documents(request.get_data(cache=True))
        if len(documents) != 1 or not isinstance(documents[0], dict):
            raise SpecError([{"path": "", "message": "PUT /v1/apis/<name> takes exactly one spec (a mapping)"}])
        document = {"name": name, **documents[0]}
        if document["name"] != name:
            raise SpecError([{"path": "name", "message": f"{document['name']!r} does not match the URL's {name!r}"}])
        return validate_spec(document)
    except SpecError as exc:
        raise ProblemError(422, str(exc), title="Invalid Task API spec", errors=exc.errors) from None


def register_api_routes(app: OpenAPI, backend: Backend) -> None:
    """Add the ``/v1`` routes."""

    @app.get("/v1/apis", tags=[TAG], responses={200: ApiList}, security=[{"bearer": []}])
    def list_apis() -> Response:
        """All deployed Task APIs."""
        return jsonify(ApiList(apis=backend.list_apis()).model_dump(mode="json"))

    @app.put(
        "/v1/apis/<name>",
        tags=[TAG],
        responses={200: ApiInfo, **ERRORS, 415: Problem},
        security=[{"bearer": []}],
        openapi_extensions=request_body(app, TaskAPISpec, ("application/json", "application/yaml")),
    )
    def put_api(path: ApiPath) -> Response:
        """Deploy or update a Task API from its spec (JSON or YAML); the name may be left out of the spec."""
        return jsonify(backend.deploy(_spec_from_body(path.name)).model_dump(mode="json"))

    @app.get("/v1/apis/<name>", tags=[TAG], responses={200: ApiInfo, 404: Problem}, security=[{"bearer": []}])
    def get_api(path: ApiPath) -> Response:
        """One Task API."""
        return jsonify(backend.get_api(api_name(path.name)).model_dump(mode="json"))

    @app.delete("/v1/apis/<name>", tags=[TAG], responses={404: Problem}, security=[{"bearer": []}])
    def delete_api(path: ApiPath) -> Response:
        """Delete a Task API, stopping its tasks in progress; finished tasks stay readable."""
        name = api_name(path.name)
        backend.delete_api(name)
        return jsonify(message=f"deleted {name}")

    @app.get(
        "/v1/apis/<name>/tasks",
        tags=[TAG],
        responses={200: TaskList, **ERRORS},
        security=[{"bearer": []}],
    )
    def list_tasks(path: ApiPath, query: ListQuery) -> Response:
        """A page of the API's tasks, newest first."""
        name = api_name(path.name)
        backend.get_api(name)
        tasks, cursor = backend.list_tasks(name, query.status, query.limit, query.cursor)
        return jsonify(TaskList(tasks=tasks, next_cursor=cursor).model_dump(mode="json"))

    @app.get(
        "/v1/apis/<name>/tasks/<task_id>",
        tags=[TAG],
        responses={200: JobStatus, 404: Problem},
        security=[{"bearer": []}],
    )
    def get_task(path: TaskPath) -> Response:
        """One task's status and attempts."""
        name = api_name(path.name)
        status = backend.get_task(name, task_id(name, path.task_id))
        return jsonify(status.model_dump(mode="json"))

    @app.get(
        "/v1/apis/<name>/tasks/<task_id>/logs",
        tags=[TAG],
        responses={404: Problem, 422: Problem},
        security=[{"bearer": []}],
    )
    def task_logs(path: TaskPath, query: LogsQuery) -> Response:
        """An attempt's stdout or stderr as text/plain; with follow=true, streamed until the attempt ends."""
        name = api_name(path.name)
        chunks = backend.logs(name, task_id(name, path.task_id), query.stream, query.attempt, query.follow)
        response = Response(stream_with_context(chunks), mimetype="text/plain")
        response.headers["X-Accel-Buffering"] = "no"
        return response
