"""The OpenAPI document: finished once per app, rendered to the committed ``openapi.yaml``."""

from __future__ import annotations

from typing import Any

import yaml
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.core.errors import ERROR_DESCRIPTIONS, PROBLEM_JSON

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
# FastAPI answers 400 when a request body cannot be read at all (JSON that is not UTF-8,
# an unparsable multipart body); a body that parses but is invalid is a 422.
DESCRIPTIONS = {400: "Malformed request body", **ERROR_DESCRIPTIONS}


def finish_openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, with every error response as ``application/problem+json``
    (``Problem``), 401 on every authenticated operation, 422 wherever input is read and
    400 wherever a request body is read."""
    if app.openapi_schema:
        return app.openapi_schema
    spec = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
        tags=app.openapi_tags,
    )
    for path, operations in spec.get("paths", {}).items():
        for operation in operations.values():
            responses: dict[str, Any] = operation.setdefault("responses", {})
            secured = bool(operation.get("security"))
            takes_input = bool(operation.get("parameters") or operation.get("requestBody"))
            if secured:
                responses.setdefault("401", {})
            if takes_input:
                responses.setdefault("422", {})
            if operation.get("requestBody"):
                responses.setdefault("400", {})
            if path.startswith("/health/ready"):
                responses.setdefault("503", {})
            for status, response in responses.items():
                if status.startswith(("4", "5")):
                    response["description"] = DESCRIPTIONS.get(int(status), "Error")
                    response["content"] = {PROBLEM_JSON: {"schema": PROBLEM_REF}}
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    app.openapi_schema = spec
    return spec


def render_openapi(app: FastAPI) -> str:
    """The app's OpenAPI document as YAML (key order kept, Unicode unescaped)."""
    return yaml.safe_dump(app.openapi(), sort_keys=False, allow_unicode=True, width=100)
