"""Keyset (cursor) pagination.

Lists are ordered by ``(created_at, id)``; the cursor is the opaque base64url form of
the last row's key. A row inserted while a client pages has a later ``created_at``
(or is never seen), so no row is skipped or repeated.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Select, tuple_
from sqlalchemy.orm import InstrumentedAttribute

from app.core.errors import Unprocessable

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


class PageQuery(BaseModel):
    """Query parameters every list endpoint takes."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="Page size.")
    cursor: str | None = Field(
        default=None, max_length=200, description="`next_cursor` of the previous page."
    )


class Page(BaseModel, Generic[T]):
    """One page of a list: ``items`` and the cursor of the next page (null on the last)."""

    items: list[T]
    next_cursor: str | None


def encode_cursor(created_at: datetime, row_id: uuid.UUID) -> str:
    raw = json.dumps([created_at.isoformat(), str(row_id)], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """Parse a cursor; a tampered or foreign cursor is a 422 on ``query.cursor``."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created_at, row_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        parsed = datetime.fromisoformat(created_at)
        if parsed.tzinfo is None:
            raise ValueError("naive")
        return parsed, uuid.UUID(row_id)
    except (ValueError, TypeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise Unprocessable.field("query.cursor", "The cursor is not valid.") from exc


def keyset(
    stmt: Select[Any],
    created_at: InstrumentedAttribute[datetime],
    row_id: InstrumentedAttribute[uuid.UUID],
    page: PageQuery,
) -> Select[Any]:
    """Order by ``(created_at, id)``, start after the cursor, fetch ``limit + 1`` rows."""
    if page.cursor:
        after = decode_cursor(page.cursor)
        stmt = stmt.where(tuple_(created_at, row_id) > tuple_(*after))
    return stmt.order_by(created_at, row_id).limit(page.limit + 1)


class HasKey(Protocol):
    @property
    def created_at(self) -> datetime: ...

    @property
    def id(self) -> uuid.UUID: ...


R = TypeVar("R", bound=HasKey)


def page_of(rows: Sequence[R], limit: int) -> tuple[list[R], str | None]:
    """Split the ``limit + 1`` fetched rows into the page and the next cursor."""
    items = list(rows[:limit])
    if len(rows) > limit:
        last = items[-1]
        return items, encode_cursor(last.created_at, last.id)
    return items, None
