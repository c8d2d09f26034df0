"""SQL for clients. Every read starts from :func:`visible`, the caller's scope."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Row, Select, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from app.assignments.scope import client_scope, clients_visible
from app.clients.models import Client
from app.clients.schemas import ClientFilters
from app.core.auth import Principal
from app.core.errors import NotFound
from app.core.pagination import keyset, page_of
from app.core.reads import ScopedRows
from app.core.search import matches

_clients = Client.__table__

# The same expression the trigram index ``ix_clients_search`` is built on (of the table's
# columns, like every read statement below).
SEARCH_DOCUMENT = (
    _clients.c.name
    + literal(" ")
    + func.coalesce(_clients.c.legal_name, "")
    + literal(" ")
    + func.coalesce(_clients.c.external_ref, "")
)


def visible(principal: Principal) -> Select[Client]:
    """Clients the caller may see (see ``app.assignments.scope``)."""
    return select(Client).where(clients_visible(principal, Client.id))


# Reads that are only serialised: rows of every column (see ``app.core.reads``).
_rows = ScopedRows(_clients, client_scope, "Client")
READ_COLUMNS = _rows.columns  # ClientRead shows every column
READ_KEYS = _rows.keys


def visible_rows(principal: Principal) -> Select[Any]:
    """:func:`visible` as rows of :data:`READ_COLUMNS`."""
    return _rows.visible(principal)


async def get_row(session: AsyncSession, principal: Principal, client_id: uuid.UUID) -> Row[Any]:
    """The client as a row of :data:`READ_COLUMNS` (one statement), or :class:`NotFound`
    when absent or out of scope."""
    return await _rows.get(session, principal, client_id)


async def check_visible(session: AsyncSession, principal: Principal, client_id: uuid.UUID) -> None:
    """Raise :class:`NotFound` unless the client exists and is in the caller's scope."""
    await _rows.check(session, principal, client_id)


async def get(session: AsyncSession, principal: Principal, client_id: uuid.UUID) -> Client:
    """The client, or :class:`NotFound` when absent or out of scope."""
    row = (
        await session.execute(visible(principal).where(Client.id == client_id))
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(f"Client {client_id} was not found.")
    return row


async def find(session: AsyncSession, principal: Principal, client_id: uuid.UUID) -> Client | None:
    """The client if it exists and the caller may see it (for references in a body)."""
    return (
        await session.execute(visible(principal).where(Client.id == client_id))
    ).scalar_one_or_none()


async def list_page(
    session: AsyncSession, principal: Principal, filters: ClientFilters
) -> tuple[list[Row[Any]], str | None]:
    """One keyset page of clients matching ``filters`` as rows of :data:`READ_COLUMNS`
    (one statement)."""
    c = _clients.c
    conditions: list[Any] = []
    if not filters.include_archived:
        conditions.append(c.archived_at.is_(None))
    if filters.segment is not None:
        conditions.append(c.segment == filters.segment.value)
    if filters.lifecycle_stage is not None:
        conditions.append(c.lifecycle_stage == filters.lifecycle_stage.value)
    if filters.country is not None:
        conditions.append(c.country == filters.country)
    if filters.parent_id is not None:
        conditions.append(c.parent_id == filters.parent_id)
    if filters.updated_since is not None:
        conditions.append(c.updated_at >= filters.updated_since)
    if filters.q is not None:
        conditions.append(matches(SEARCH_DOCUMENT, filters.q))
    # The table's columns, not the ORM attributes: a statement naming an entity's attributes
    # takes the ORM execution path (result set-up per request) even when it loads columns.
    created_at = cast("InstrumentedAttribute[datetime]", c.created_at)
    row_id = cast("InstrumentedAttribute[uuid.UUID]", c.id)
    stmt = keyset(visible_rows(principal).where(*conditions), created_at, row_id, filters)
    rows = (await session.execute(stmt)).all()
    return page_of(rows, filters.limit)
