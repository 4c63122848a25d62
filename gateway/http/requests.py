"""Reading requests: bodies, names and IDs, with problems for anything malformed."""

from __future__ import annotations

import re
from typing import TypeVar

from flask import request
from pydantic import BaseModel, ValidationError

from gateway.http.problems import ProblemError, pydantic_errors
from gateway.spec import DNS_LABEL

Model = TypeVar("Model", bound=BaseModel)
TASK_ID = re.compile(r"^[0-9a-f]{16}$")
IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
# curl -d sends form encoding by default; its body is still the JSON the user typed.
JSON_LIKE = ("application/json", "application/x-www-form-urlencoded", "")


def json_body(model: type[Model]) -> Model:
    """The request body validated against ``model``; an empty body means the model's defaults."""
    mimetype = request.mimetype
    if mimetype not in JSON_LIKE and not mimetype.endswith("+json"):
        raise ProblemError(415, f"send the body as application/json, not {mimetype}")
    raw = request.get_data(cache=True)
    if not raw.strip():
        raw = b"{}"
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        if any(e["type"] == "json_invalid" for e in errors):
            raise ProblemError(400, f"the body is not valid JSON: {errors[0]['msg']}", title="Malformed JSON") from None
        raise ProblemError(
            422, "the body does not match the expected shape", title="Invalid request", errors=pydantic_errors(errors)
        ) from None


def api_name(name: str) -> str:
    """``name`` if it could name a Task API; a 404 otherwise (no such API can exist)."""
    if not DNS_LABEL.fullmatch(name):
        raise ProblemError(404, f"no Task API named {name!r}", title="Not found")
    return name


def task_id(api: str, value: str) -> str:
    """``value`` if it could be a task ID; a 404 otherwise."""
    if not TASK_ID.match(value):
        raise ProblemError(404, f"no task {value!r} in Task API {api!r}", title="Not found")
    return value


def idempotency_key() -> str | None:
    """The ``Idempotency-Key`` header, checked to be printable ASCII of at most 255 characters."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not IDEMPOTENCY_KEY.match(key):
        raise ProblemError(400, "Idempotency-Key must be 1 to 255 printable ASCII characters without spaces")
    return key
