"""Request bodies in the OpenAPI document for routes that read their body themselves.

Those routes accept YAML or lenient JSON, so flask-openapi3 cannot validate them; their schema still comes
from the same pydantic model that validates them.
"""

from __future__ import annotations

from typing import Any

from flask_openapi3 import OpenAPI
from flask_openapi3.models import Schema
from flask_openapi3.utils import get_model_schema
from pydantic import BaseModel


def request_body(app: OpenAPI, model: type[BaseModel], media_types: tuple[str, ...]) -> dict[str, Any]:
    """An operation fragment whose requestBody is ``model``, registering its schema in the components."""
    schema = get_model_schema(model)
    for name, value in schema.pop("$defs", {}).items():
        app.components_schemas[name] = Schema(**value)
    app.components_schemas[model.__name__] = Schema(**schema)
    ref = {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
    return {"requestBody": {"content": dict.fromkeys(media_types, ref)}}
