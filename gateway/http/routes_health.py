"""Health, readiness, metrics and the OpenAPI document."""

from __future__ import annotations

from flask import Response, jsonify
from flask_openapi3 import OpenAPI

from gateway.backends.base import Backend, BackendError
from gateway.http import metrics
from gateway.http.problems import problem_response


def register_health_routes(app: OpenAPI, backend: Backend) -> None:
    """Add ``/healthz``, ``/readyz``, ``/metrics`` and ``/openapi.json``."""

    @app.get("/healthz", summary="The process is up")
    def healthz() -> Response:
        return jsonify(status="ok")

    @app.get("/readyz", summary="The backend can serve")
    def readyz() -> Response:
        try:
            backend.check_ready()
        except BackendError as exc:
            return problem_response(503, exc.detail, title="Not ready")
        return jsonify(status="ready")

    @app.get("/metrics", summary="Prometheus metrics", doc_ui=False)
    def prometheus() -> Response:
        return Response(metrics.render(backend), mimetype="text/plain; version=0.0.4")

    @app.get("/openapi.json", summary="This document", doc_ui=False)
    def openapi() -> Response:
        return jsonify(app.api_doc)
