"""Base models and shared field types for request and response bodies."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated, Self
from zoneinfo import available_timezones

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
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
