"""HTTP conventions shared by every resource: ETag / If-Match and Idempotency-Key.

* ``ETag`` is the resource's ``version`` as a strong tag (``"3"``). ``PATCH``/``DELETE``
  with ``If-Match`` answer 412 when it is stale (RFC 9110 §13.1.1).
* ``POST`` with ``Idempotency-Key`` (IETF draft-ietf-httpapi-idempotency-key-header): the
  key row is inserted in the same transaction as the write, so a retry after a commit
  replays the stored response, a concurrent duplicate waits for the first and then
  replays it, and a failed first attempt leaves no trace. Reusing a key with another
  body is a 422. Keys are scoped to the caller's subject.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Protocol

from fastapi import Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import JSON, DateTime, Integer, String, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from app.core.auth import Principal
from app.core.db import Base
from app.core.errors import PreconditionFailed, Unprocessable

IfMatch = Annotated[
    str | None,
    Header(
        alias="If-Match",
        description="ETag of the version you read; a stale one is a 412.",
        max_length=200,
    ),
]
IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Unique key per intended request; a retry returns the first response.",
        min_length=1,
        max_length=200,
    ),
]


class Versioned(Protocol):
    version: int


def etag(version: int) -> str:
    return f'"{version}"'


def check_if_match(if_match: str | None, version: int) -> None:
    """Raise :class:`PreconditionFailed` unless ``If-Match`` is absent, ``*`` or lists
    the current version's ETag (weak tags compare by their value)."""
    if if_match is None:
        return
    tags = [t.strip() for t in if_match.split(",")]
    current = etag(version)
    for tag in tags:
        if tag == "*" or tag.removeprefix("W/") == current:
            return
    raise PreconditionFailed(
        f"If-Match {if_match} does not match the current version {current}.",
        headers={"ETag": current},
    )


class IdempotencyRecord(Base):
    """A POST already answered under an ``Idempotency-Key``."""

    __tablename__ = "idempotency_keys"

    subject: Mapped[str] = mapped_column(String(200), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    status_code: Mapped[int | None] = mapped_column(Integer)
    # json, not jsonb: a replay returns the body with its keys in the original order.
    response_body: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    response_headers: Mapped[dict[str, str] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )


class CreatedResource(Protocol):
    id: Any
    version: int

    def model_dump(self, *, mode: str = ...) -> dict[str, Any]: ...


def _request_hash(request: Request, payload: BaseModel) -> str:
    canonical = json.dumps(
        [request.method, request.url.path, payload.model_dump(mode="json", exclude_unset=True)],
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


async def create_idempotently(
    request: Request,
    session: AsyncSession,
    principal: Principal,
    key: str | None,
    payload: BaseModel,
    create: Callable[[], Awaitable[BaseModel]],
    *,
    location: str | None = None,
) -> JSONResponse:
    """Run ``create`` once per (caller, key) and answer 201 with ETag and Location.

    ``location`` is the collection the created ``id`` lives in (default: this path;
    ``""``: no Location header). ``ETag`` is sent when the body has a ``version``.

    Raises:
        Unprocessable: the key was used before with a different method, path or body.
    """
    claimed = True
    request_hash = ""
    if key is not None:
        request_hash = _request_hash(request, payload)
        inserted = await session.execute(
            insert(IdempotencyRecord)
            .values(subject=principal.subject, key=key, request_hash=request_hash)
            .on_conflict_do_nothing()
            .returning(IdempotencyRecord.key)
        )
        claimed = inserted.scalar_one_or_none() is not None
    if not claimed:
        record = (
            await session.execute(
                select(IdempotencyRecord).where(
                    IdempotencyRecord.subject == principal.subject, IdempotencyRecord.key == key
                )
            )
        ).scalar_one()
        if record.request_hash != request_hash or record.status_code is None:
            raise Unprocessable.field(
                "header.Idempotency-Key",
                "This Idempotency-Key was already used with a different request.",
            )
        replayed = dict(record.response_headers or {})
        replayed["Idempotent-Replayed"] = "true"
        return JSONResponse(record.response_body, status_code=record.status_code, headers=replayed)

    created = await create()
    body = created.model_dump(mode="json")
    headers: dict[str, str] = {}
    if "version" in body:
        headers["ETag"] = etag(int(body["version"]))
    if location != "" and "id" in body:
        collection = request.url.path if location is None else location
        headers["Location"] = f"{collection.rstrip('/')}/{body['id']}"
    if key is not None:
        await session.execute(
            update(IdempotencyRecord)
            .where(IdempotencyRecord.subject == principal.subject, IdempotencyRecord.key == key)
            .values(status_code=201, response_body=body, response_headers=headers)
        )
    return JSONResponse(body, status_code=201, headers=headers)
