"""SQL for managers. Every read starts from :func:`visible`, the caller's scope."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.assignments.scope import managers_visible
from app.core.auth import Principal
from app.core.errors import NotFound
from app.core.pagination import keyset, page_of
from app.core.search import matches
from app.managers.models import Manager
from app.managers.schemas import ManagerFilters


def visible(principal: Principal) -> Select[Manager]:
    """Managers the caller may see (see ``app.assignments.scope``)."""
    return select(Manager).where(managers_visible(principal, Manager.id))


async def get(
    session: AsyncSession, principal: Principal, manager_id: uuid.UUID, *, for_update: bool = False
) -> Manager:
    """The manager, or :class:`NotFound` when absent or out of scope."""
    stmt = visible(principal).where(Manager.id == manager_id)
    if for_update:
        stmt = stmt.with_for_update()
    row = (await session.execute(stmt)).scalar_one_or_none()
    if row is None:
        raise NotFound(f"Manager {manager_id} was not found.")
    return row


async def exists(session: AsyncSession, principal: Principal, manager_id: uuid.UUID) -> bool:
    """Whether the manager exists and is in the caller's scope."""
    found = await session.execute(
        visible(principal).with_only_columns(Manager.id).where(Manager.id == manager_id)
    )
    return found.scalar_one_or_none() is not None


async def list_page(
    session: AsyncSession, principal: Principal, filters: ManagerFilters
) -> tuple[list[Manager], str | None]:
    """One keyset page of managers matching ``filters`` (one statement)."""
    stmt = visible(principal)
    conditions: list[Any] = []
    if filters.role is not None:
        conditions.append(Manager.role == filters.role.value)
    if filters.active is not None:
        conditions.append(Manager.active.is_(filters.active))
    if filters.reports_to_id is not None:
        conditions.append(Manager.reports_to_id == filters.reports_to_id)
    if filters.region is not None:
        conditions.append(Manager.region == filters.region)
    if filters.updated_since is not None:
        conditions.append(Manager.updated_at >= filters.updated_since)
    if filters.q is not None:
        conditions.append(matches(Manager.full_name + " " + Manager.email, filters.q))
    stmt = keyset(stmt.where(*conditions), Manager.created_at, Manager.id, filters)
    rows = (await session.execute(stmt)).scalars().all()
    return page_of(rows, filters.limit)
