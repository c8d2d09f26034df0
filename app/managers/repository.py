"""SQL for managers. Every read starts from :func:`visible`, the caller's scope."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Row, Select, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from app.assignments.scope import manager_scope, managers_visible
from app.core.auth import Principal
from app.core.errors import NotFound
from app.core.pagination import keyset, page_of
from app.core.reads import ScopedRows
from app.core.search import matches
from app.managers.models import Manager
from app.managers.schemas import ManagerFilters


def visible(principal: Principal) -> Select[Manager]:
    """Managers the caller may see (see ``app.assignments.scope``)."""
    return select(Manager).where(managers_visible(principal, Manager.id))


# Reads that are only serialised: rows of every column (see ``app.core.reads``).
_managers = Manager.__table__
_rows = ScopedRows(_managers, manager_scope, "Manager")
READ_COLUMNS = _rows.columns  # ManagerRead shows every column
READ_KEYS = _rows.keys


async def get_row(session: AsyncSession, principal: Principal, manager_id: uuid.UUID) -> Row[Any]:
    """The manager as a row of :data:`READ_COLUMNS` (one statement), or :class:`NotFound`
    when absent or out of scope."""
    return await _rows.get(session, principal, manager_id)


async def check_visible(session: AsyncSession, principal: Principal, manager_id: uuid.UUID) -> None:
    """Raise :class:`NotFound` unless the manager exists and is in the caller's scope."""
    await _rows.check(session, principal, manager_id)


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
) -> tuple[list[Row[Any]], str | None]:
    """One keyset page of managers matching ``filters`` as rows of :data:`READ_COLUMNS`
    (one statement)."""
    c = _managers.c
    stmt = _rows.visible(principal)
    conditions: list[Any] = []
    if filters.role is not None:
        conditions.append(c.role == filters.role.value)
    if filters.active is not None:
        conditions.append(c.active.is_(filters.active))
    if filters.reports_to_id is not None:
        conditions.append(c.reports_to_id == filters.reports_to_id)
    if filters.region is not None:
        conditions.append(c.region == filters.region)
    if filters.updated_since is not None:
        conditions.append(c.updated_at >= filters.updated_since)
    if filters.q is not None:
        conditions.append(matches(c.full_name + " " + c.email, filters.q))
    # The table's columns, not the ORM attributes, so the statement stays on the Core
    # execution path (keyset() only orders and compares them).
    created_at = cast("InstrumentedAttribute[datetime]", c.created_at)
    row_id = cast("InstrumentedAttribute[uuid.UUID]", c.id)
    stmt = keyset(stmt.where(*conditions), created_at, row_id, filters)
    rows = (await session.execute(stmt)).all()
    return page_of(rows, filters.limit)
