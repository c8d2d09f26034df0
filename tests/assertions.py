"""Assertions shared by the HTTP tests: RFC 9457 problem details and their field errors."""

from __future__ import annotations

from typing import Any

from httpx import Response

PROBLEM_KEYS = {"type", "title", "status", "detail", "instance"}
# Words that must never reach a client in an error body.
INTERNALS = ("Traceback", 'File "', "sqlalchemy", "asyncpg", "psycopg", "SELECT ", "INSERT ")


def assert_problem(response: Response, status: int) -> dict[str, Any]:
    """Assert ``response`` is an RFC 9457 problem with ``status``; return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body: dict[str, Any] = response.json()
    assert PROBLEM_KEYS <= body.keys(), body
    assert body["status"] == status
    assert body["type"].startswith("https://"), body
    text = response.text
    for word in INTERNALS:
        assert word not in text, f"{word!r} leaked in {text}"
    return body


def error_fields(body: dict[str, Any]) -> set[str]:
    """The ``errors[].field`` values of a problem body."""
    return {e["field"] for e in body.get("errors") or []}


def assert_invalid(response: Response, field: str) -> dict[str, Any]:
    """Assert a 422 problem whose field errors name ``field``."""
    body = assert_problem(response, 422)
    assert field in error_fields(body), body
    for error in body["errors"]:
        assert {"field", "message", "type"} <= error.keys()
    return body
