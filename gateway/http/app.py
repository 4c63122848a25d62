"""The Flask application: routes, errors, auth and metrics around one backend."""

from __future__ import annotations

import logging
import time

from flask import Flask, Response, g, request
from flask_openapi3 import Info, OpenAPI
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

from gateway import __version__
from gateway.backends.base import Backend, BackendError
from gateway.config import Settings
from gateway.http import metrics
from gateway.http.auth import KeyChecker
from gateway.http.problems import ProblemError, from_error, problem_response, pydantic_errors
from gateway.http.routes_apis import register_api_routes
from gateway.http.routes_health import register_health_routes
from gateway.http.routes_tasks import register_task_routes
from gateway.models import Problem

log = logging.getLogger("taskapi.http")


def _validation_problem(error: ValidationError) -> Response:
    return problem_response(
        422,
        "the request's parameters are invalid",
        title="Invalid request",
        errors=pydantic_errors(error.errors(include_url=False)),
    )


# gunicorn drains only 64 KiB of a body the app did not read and then drops the keep-alive connection,
# which breaks the client's next request; refused bodies up to this size are read and thrown away instead.
DISCARD_LIMIT = 16 * 1024 * 1024


def _discard_body() -> None:
    remaining = min(request.content_length or 0, DISCARD_LIMIT)
    stream = request.environ["wsgi.input"]
    while remaining > 0:
        chunk = stream.read(min(remaining, 64 * 1024))
        if not chunk:
            break
        remaining -= len(chunk)


def create_app(settings: Settings, backend: Backend) -> Flask:
    """A gateway app serving the whole HTTP contract (DESIGN section 3) over ``backend``."""
    app = OpenAPI(
        __name__,
        info=Info(title="Task API", version=__version__, description="Run containers on demand over HTTP."),
        security_schemes={"bearer": {"type": "http", "scheme": "bearer"}},
        doc_ui=False,
        validation_error_status=422,
        validation_error_model=Problem,
        validation_error_callback=_validation_problem,
    )
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    # "//" must not turn into an HTML redirect: an empty task ID is simply not found.
    app.url_map.merge_slashes = False
    app.extensions["taskapi.backend"] = backend
    app.extensions["taskapi.settings"] = settings
    keys = KeyChecker(settings.keys())

    @app.before_request
    def _authenticate() -> None:
        g.started = time.perf_counter()
        keys.check()

    @app.after_request
    def _count(response: Response) -> Response:
        route = request.url_rule.rule if request.url_rule else "unmatched"
        metrics.REQUESTS.labels(request.method, route, str(response.status_code)).inc()
        if "started" in g:
            metrics.LATENCY.labels(route).observe(time.perf_counter() - g.started)
        return response

    @app.errorhandler(ProblemError)
    def _problem(error: ProblemError) -> Response:
        return from_error(error)

    @app.errorhandler(BackendError)
    def _backend_error(error: BackendError) -> Response:
        if error.status >= 500:
            log.warning("backend error: %s", error.detail)
        return problem_response(error.status, error.detail, title=error.title)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Response:
        status = error.code or 500
        headers = {}
        if status == 405 and getattr(error, "valid_methods", None):
            headers["Allow"] = ", ".join(sorted(error.valid_methods))  # type: ignore[attr-defined]
        detail = error.description
        if status == 413:
            detail = f"the request body is larger than the limit of {settings.max_body_bytes} bytes"
            _discard_body()
        elif status == 404:
            detail = f"no route for {request.method} {request.path}"
        return problem_response(status, detail, headers=headers)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        log.exception("unexpected error answering %s %s", request.method, request.path)
        return problem_response(500, "the gateway failed to answer; the error is in its log")

    register_health_routes(app, backend)
    register_api_routes(app, backend)
    register_task_routes(app, backend, settings)
    return app
