"""SQL for the audit log (keyset on ``seq``)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.models import AuditEvent
from app.audit.schemas import AuditFilters
from app.core.pagination import PageQuery, decode_cursor, encode_cursor


async def _page(
    session: AsyncSession, conditions: list[Any], page: PageQuery
) -> tuple[list[AuditEvent], str | None]:
    stmt = select(AuditEvent).where(*conditions)
    if page.cursor:
        (seq,) = decode_cursor(page.cursor, int)
        stmt = stmt.where(AuditEvent.seq > seq)
    rows = list(
        (await session.execute(stmt.order_by(AuditEvent.seq).limit(page.limit + 1))).scalars()
    )
    items = rows[: page.limit]
    return items, encode_cursor(items[-1].seq) if len(rows) > page.limit else None


async def events_page(
    session: AsyncSession, filters: AuditFilters
) -> tuple[list[AuditEvent], str | None]:
    conditions: list[Any] = []
    if filters.resource is not None:
        conditions.append(AuditEvent.resource == filters.resource)
    if filters.resource_id is not None:
        conditions.append(AuditEvent.resource_id == filters.resource_id)
    if filters.actor is not None:
        conditions.append(AuditEvent.actor == filters.actor)
    if filters.at_from is not None:
        conditions.append(AuditEvent.at >= filters.at_from)
    if filters.at_to is not None:
        conditions.append(AuditEvent.at < filters.at_to)
    return await _page(session, conditions, filters)


async def client_history_page(
    session: AsyncSession, client_id: uuid.UUID, page: PageQuery
) -> tuple[list[AuditEvent], str | None]:
    """Every write to the client and to records that belong to it."""
    return await _page(session, [AuditEvent.client_id == client_id], page)
