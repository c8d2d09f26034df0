"""SQL for clients. Every read starts from :func:`visible`, the caller's scope."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Select, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.assignments.scope import clients_visible
from app.clients.models import Client
from app.clients.schemas import ClientFilters
from app.core.auth import Principal
from app.core.errors import NotFound
from app.core.pagination import keyset, page_of
from app.core.search import matches

# The same expression the trigram index ``ix_clients_search`` is built on.
SEARCH_DOCUMENT = (
    Client.name
    + literal(" ")
    + func.coalesce(Client.legal_name, "")
    + literal(" ")
    + func.coalesce(Client.external_ref, "")
)


def visible(principal: Principal) -> Select[Client]:
    """Clients the caller may see (see ``app.assignments.scope``)."""
    return select(Client).where(clients_visible(principal, Client.id))


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
) -> tuple[list[Client], str | None]:
    """One keyset page of clients matching ``filters`` (one statement)."""
    conditions: list[Any] = []
    if not filters.include_archived:
        conditions.append(Client.archived_at.is_(None))
    if filters.segment is not None:
        conditions.append(Client.segment == filters.segment.value)
    if filters.lifecycle_stage is not None:
        conditions.append(Client.lifecycle_stage == filters.lifecycle_stage.value)
    if filters.country is not None:
        conditions.append(Client.country == filters.country)
    if filters.parent_id is not None:
        conditions.append(Client.parent_id == filters.parent_id)
    if filters.updated_since is not None:
        conditions.append(Client.updated_at >= filters.updated_since)
    if filters.q is not None:
        conditions.append(matches(SEARCH_DOCUMENT, filters.q))
    stmt = keyset(visible(principal).where(*conditions), Client.created_at, Client.id, filters)
    rows = (await session.execute(stmt)).scalars().all()
    return page_of(rows, filters.limit)
