"""RFC 9457 problem details: the error types services raise and the handlers that render them.

Every error leaves the service as ``application/problem+json`` with ``type``, ``title``,
``status``, ``detail`` and ``instance``; validation errors add ``errors`` (one entry per
field). Database constraint violations are mapped by constraint *name* (see
``register_constraint``), never by message text. Nothing internal (stack, SQL, table
names) is ever rendered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm.exc import StaleDataError
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://errors.ams.example/"

log = structlog.get_logger("app.errors")


class FieldError(BaseModel):
    """One invalid input: where it is (``body.name``, ``query.limit``) and why."""

    field: str
    message: str
    type: str


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = Field(examples=[TYPE_BASE + "not-found"])
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[FieldError] | None = None


class AppError(Exception):
    """Base of the errors services raise; rendered as problem+json."""

    status: int = 400
    slug: str = "bad-request"
    title: str = "Bad request"

    def __init__(
        self,
        detail: str,
        *,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}
        self.extra = extra or {}


class Unauthorized(AppError):
    status, slug, title = 401, "unauthorized", "Authentication required"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


class Forbidden(AppError):
    status, slug, title = 403, "forbidden", "Not allowed"


class NotFound(AppError):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(AppError):
    status, slug, title = 409, "conflict", "Conflict"


class PreconditionFailed(AppError):
    status, slug, title = 412, "precondition-failed", "Precondition failed"


class Unprocessable(AppError):
    status, slug, title = 422, "unprocessable", "Unprocessable request"

    @classmethod
    def field(cls, field: str, message: str, kind: str = "value_error") -> Unprocessable:
        """A 422 naming one field, e.g. ``Unprocessable.field("body.parent_id", "...")``."""
        return cls(message, errors=[FieldError(field=field, message=message, type=kind)])


class ServiceUnavailable(AppError):
    status, slug, title = 503, "service-unavailable", "Service unavailable"


@dataclass(frozen=True)
class ConstraintRule:
    status: int
    message: str
    field: str | None = None


_CONSTRAINTS: dict[str, ConstraintRule] = {}


def register_constraint(name: str, status: int, message: str, field: str | None = None) -> None:
    """Say how a violation of database constraint ``name`` is shown (409 or 422)."""
    _CONSTRAINTS[name] = ConstraintRule(status, message, field)


def constraint_message(name: str | None) -> str | None:
    """The message registered for database constraint ``name``, if any."""
    rule = _CONSTRAINTS.get(name or "")
    return rule.message if rule is not None else None


def problem_response(
    request: Request,
    status: int,
    slug: str,
    title: str,
    detail: str | None,
    *,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": TYPE_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
    }
    if errors:
        body["errors"] = [e.model_dump() for e in errors]
    if extra:
        body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _loc_to_field(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(p) for p in loc)


def integrity_to_error(exc: IntegrityError) -> AppError:
    """Map a constraint violation to a 409/422 by the constraint's name."""
    cause = getattr(exc.orig, "__cause__", None)
    name = getattr(cause, "constraint_name", None)
    sqlstate = getattr(cause, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    rule = _CONSTRAINTS.get(name or "")
    if rule is not None:
        errors = (
            [FieldError(field=rule.field, message=rule.message, type="constraint")]
            if rule.field
            else None
        )
        if rule.status == 409:
            return Conflict(rule.message, errors=errors)
        return Unprocessable(rule.message, errors=errors)
    if sqlstate == "23505":
        return Conflict("A record with the same unique value already exists.")
    if sqlstate == "23503":
        return Unprocessable("The request refers to a record that does not exist.")
    if sqlstate == "23P01":
        return Conflict("The request overlaps an existing record.")
    log.warning("unmapped_constraint", constraint=name, sqlstate=sqlstate)
    return Unprocessable("The request violates a data rule.")


def install_error_handlers(app: FastAPI) -> None:
    """Render every error the app can raise as problem+json."""

    async def app_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, AppError)
        return problem_response(
            request,
            exc.status,
            exc.slug,
            exc.title,
            exc.detail,
            errors=exc.errors,
            headers=exc.headers,
            extra=exc.extra,
        )

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [
            FieldError(
                field=_loc_to_field(e.get("loc", ())),
                message=str(e.get("msg", "invalid")),
                type=str(e.get("type", "value_error")),
            )
            for e in exc.errors()
        ]
        fields = ", ".join(sorted({e.field for e in errors}))
        return problem_response(
            request,
            422,
            "validation-error",
            "Invalid request",
            f"Invalid value for: {fields}.",
            errors=errors,
        )

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        titles = {404: "Not found", 405: "Method not allowed", 401: "Authentication required"}
        return problem_response(
            request,
            exc.status_code,
            {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error"),
            titles.get(exc.status_code, "HTTP error"),
            str(exc.detail),
            headers=dict(exc.headers or {}),
        )

    async def integrity_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, IntegrityError)
        return await app_error(request, integrity_to_error(exc))

    async def stale_error(request: Request, exc: Exception) -> JSONResponse:
        return await app_error(
            request,
            PreconditionFailed(
                "The resource was changed by another request; read it again and retry."
            ),
        )

    async def database_unavailable(request: Request, exc: Exception) -> JSONResponse:
        log.error("database_unavailable", error=type(exc).__name__)
        return await app_error(
            request,
            ServiceUnavailable("The database is unavailable; retry shortly.", headers={}),
        )

    async def db_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, DBAPIError)
        if exc.connection_invalidated or isinstance(exc, (OperationalError, InterfaceError)):
            return await database_unavailable(request, exc)
        sqlstate = getattr(getattr(exc.orig, "__cause__", None), "sqlstate", None)
        if sqlstate == "57014":  # query_canceled: statement_timeout
            return await app_error(
                request, ServiceUnavailable("The request took too long; retry shortly.")
            )
        if sqlstate in {"40001", "40P01"}:  # serialization failure / deadlock
            return await app_error(
                request, Conflict("A concurrent request changed the same data; retry.")
            )
        if sqlstate and sqlstate.startswith("22"):  # data exception: bad value for a column
            return await app_error(request, Unprocessable("A value is out of range or invalid."))
        return await unhandled(request, exc)

    async def unhandled(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled_error", error=type(exc).__name__)
        return problem_response(
            request, 500, "internal", "Internal error", "An unexpected error occurred."
        )

    app.add_exception_handler(AppError, app_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(IntegrityError, integrity_error)
    app.add_exception_handler(StaleDataError, stale_error)
    app.add_exception_handler(PoolTimeoutError, database_unavailable)
    app.add_exception_handler(OSError, database_unavailable)
    app.add_exception_handler(DBAPIError, db_error)
    app.add_exception_handler(Exception, unhandled)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries for the given error statuses (problem+json).

    The spec is finished by :func:`app.openapi.finish_openapi`, which makes every
    problem response ``application/problem+json`` only and adds 401/422 everywhere."""
    return {
        s: {"model": Problem, "description": ERROR_DESCRIPTIONS.get(s, "Error")} for s in statuses
    }


ERROR_DESCRIPTIONS = {
    401: "Missing or invalid bearer token",
    403: "The caller's role may not do this",
    404: "Not found (or not visible to the caller)",
    409: "Conflicts with the current state",
    412: "If-Match does not match the current version",
    422: "Invalid input",
    503: "Database unavailable",
}
