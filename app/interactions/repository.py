"""SQL for interactions. Every read starts from :func:`visible`, the caller's scope."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.assignments.models import Assignment
from app.assignments.scope import clients_visible
from app.core.auth import Principal
from app.core.errors import NotFound
from app.core.pagination import keyset, page_of
from app.interactions.models import Interaction
from app.interactions.schemas import InteractionFilters


def visible(principal: Principal) -> Select[Interaction]:
    """Interaction records of clients in the caller's scope (``app.assignments.scope``)."""
    return select(Interaction).where(clients_visible(principal, Interaction.client_id))


async def get(
    session: AsyncSession, principal: Principal, interaction_id: uuid.UUID
) -> Interaction:
    """The interaction, or :class:`NotFound`."""
    row = (
        await session.execute(visible(principal).where(Interaction.id == interaction_id))
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(f"Interaction {interaction_id} was not found.")
    return row


async def list_page(
    session: AsyncSession, principal: Principal, filters: InteractionFilters
) -> tuple[list[Interaction], str | None]:
    """One keyset page of interactions matching ``filters`` (one statement)."""
    conditions: list[Any] = []
    if filters.client_id is not None:
        conditions.append(Interaction.client_id == filters.client_id)
    if filters.manager_id is not None:
        conditions.append(Interaction.manager_id == filters.manager_id)
    if filters.channel is not None:
        conditions.append(Interaction.channel == filters.channel.value)
    if filters.occurred_from is not None:
        conditions.append(Interaction.occurred_at >= filters.occurred_from)
    if filters.occurred_to is not None:
        conditions.append(Interaction.occurred_at < filters.occurred_to)
    if filters.next_step_overdue is True:
        conditions.append(Interaction.next_step_done.is_(False))
        conditions.append(Interaction.next_step_due_at < func.now())
    elif filters.next_step_overdue is False:
        conditions.append(
            (Interaction.next_step_done.is_not(False))
            | (Interaction.next_step_due_at.is_(None))
            | (Interaction.next_step_due_at >= func.now())
        )
    stmt = keyset(
        visible(principal).where(*conditions), Interaction.created_at, Interaction.id, filters
    )
    rows = (await session.execute(stmt)).scalars().all()
    return page_of(rows, filters.limit)


async def is_assigned_at(
    session: AsyncSession, client_id: uuid.UUID, manager_id: uuid.UUID, at: datetime
) -> bool:
    """Whether ``manager_id`` holds any assignment (primary, secondary, cover) for the
    client at ``at``."""
    found = await session.execute(
        select(Assignment.id)
        .where(
            Assignment.client_id == client_id,
            Assignment.manager_id == manager_id,
            Assignment.period.contains(at),
        )
        .limit(1)
    )
    return found.scalar_one_or_none() is not None
