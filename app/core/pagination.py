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


CursorValue = datetime | uuid.UUID | int | str


def encode_cursor(*values: CursorValue) -> str:
    """The opaque cursor for a row whose sort key is ``values``."""
    raw = json.dumps(
        [
            v.isoformat() if isinstance(v, datetime) else v if isinstance(v, int) else str(v)
            for v in values
        ],
        separators=(",", ":"),
    )
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, *types: type) -> tuple[Any, ...]:
    """Parse a cursor whose values have ``types`` (default: an instant and a UUID); a
    tampered or foreign cursor is a 422 on ``query.cursor``."""
    types = types or (datetime, uuid.UUID)
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        raw = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(raw, list) or len(raw) != len(types):
            raise ValueError("shape")
        values: list[Any] = []
        for kind, value in zip(types, raw, strict=True):
            if kind is datetime:
                parsed = datetime.fromisoformat(value)
                if parsed.tzinfo is None:
                    raise ValueError("naive")
                values.append(parsed)
            elif kind is uuid.UUID:
                values.append(uuid.UUID(value))
            elif kind is int:
                if not isinstance(value, int):
                    raise ValueError("int")
                values.append(value)
            else:
                values.append(str(value))
        return tuple(values)
    except (ValueError, TypeError, AttributeError, UnicodeDecodeError) as exc:
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
