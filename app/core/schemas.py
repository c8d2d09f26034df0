"""Base models and shared field types for request and response bodies."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Annotated, Self
from zoneinfo import available_timezones

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    Strict,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    model_validator,
)


class StrictModel(BaseModel):
    """Request bodies: unknown fields are a 422, not silently ignored."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ReadModel(BaseModel):
    """Response bodies, built from ORM rows. Every instant is returned in UTC."""

    model_config = ConfigDict(from_attributes=True)

    @model_validator(mode="after")
    def _instants_in_utc(self) -> Self:
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, datetime) and value.tzinfo is not None:
                object.__setattr__(self, name, value.astimezone(UTC))
        return self


class AuditedRead(ReadModel):
    """Fields every stored resource returns."""

    id: uuid.UUID
    version: int = Field(description="Bumped on every change; sent as the ETag.")
    created_at: datetime
    updated_at: datetime
    created_by: str | None
    updated_by: str | None


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def _check_zone(value: str) -> str:
    if value not in _zones():
        raise ValueError(f"{value!r} is not an IANA time zone name")
    return value


TimeZoneName = Annotated[
    str,
    Field(examples=["Europe/Budapest"], description="IANA time zone name", max_length=64),
    AfterValidator(_check_zone),
]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
ExternalRef = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
    Field(description="The record's id in another system; unique when given."),
]
SearchText = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
    Field(description="Case- and accent-insensitive substring search, any script."),
]


# A bare number, as text or JSON: pydantic would read it as a Unix timestamp.
_NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")


def _not_a_number(expected: str) -> BeforeValidator:
    def check(value: object) -> object:
        if isinstance(value, bool | int | float) or (
            isinstance(value, str) and _NUMBER.fullmatch(value)
        ):
            raise ValueError(f"expected {expected}, not a number")
        return value

    return BeforeValidator(check)


Instant = Annotated[
    AwareDatetime, _not_a_number("an RFC 3339 date-time with an offset, e.g. 2026-03-29T01:30:00Z")
]
"""An instant in request input: RFC 3339 text with an offset only. Pydantic alone would
also take a number (or numeric text) as Unix seconds, which the OpenAPI ``date-time``
format does not allow."""

Day = Annotated[date, _not_a_number("an ISO 8601 date, e.g. 2026-03-31")]
"""A calendar date in request input: ISO 8601 ``YYYY-MM-DD`` text only (no timestamps)."""

Integer = Annotated[int, Strict()]
"""An integer in a JSON request body: a JSON integer only. Lax pydantic would read
``true``/``false`` as 1/0 and ``"5"`` as 5. Not for query parameters, which are text."""


_INSTANT: TypeAdapter[datetime] = TypeAdapter(AwareDatetime)
_DAY: TypeAdapter[date] = TypeAdapter(date)


def _instant_or_day(value: object) -> datetime | date:
    if isinstance(value, date):  # a datetime is a date too; built in code, not parsed
        if isinstance(value, datetime) and value.tzinfo is None:
            raise ValueError("an instant needs an offset, e.g. 2026-03-29T01:30:00Z")
        return value
    if isinstance(value, str) and not _NUMBER.fullmatch(value):
        for adapter in (_INSTANT, _DAY):
            try:
                return adapter.validate_python(value)
            except ValidationError:
                continue
    raise ValueError(
        "expected an RFC 3339 date-time with an offset (2026-03-29T01:30:00Z) "
        "or an ISO 8601 date (2026-03-31)"
    )


InstantOrDay = Annotated[
    datetime | date,
    PlainValidator(_instant_or_day, json_schema_input_type=AwareDatetime | date),
]
"""An ``as_of``-style input: an instant, or a date (callers say what a date means, e.g.
00:00 in the organisation's zone). One error for the field, not one per union member."""


def _true_or_false(value: object) -> object:
    if isinstance(value, str) and value.strip().lower() not in ("true", "false"):
        raise ValueError("expected true or false")
    return value


FormBoolean = Annotated[bool, BeforeValidator(_true_or_false)]
"""A boolean form field: ``true`` or ``false`` (any case). Lax pydantic would also read
``1``/``0``, ``yes``/``no``, ``on``/``off``, which the OpenAPI ``boolean`` does not allow."""
