"""SQL for assignments, absences and books of business. Set-based throughout."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    exists,
    func,
    literal,
    or_,
    select,
    tuple_,
)
from sqlalchemy.dialects.postgresql import TSTZRANGE
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.assignments.models import Assignment, AssignmentRole
from app.assignments.schemas import AssignmentFilters, BookQuery
from app.assignments.scope import clients_visible, either_visible
from app.clients.models import Client
from app.core.auth import Principal
from app.core.errors import NotFound
from app.core.pagination import decode_cursor, encode_cursor, keyset, page_of

PRIMARY, SECONDARY, COVER = (r.value for r in AssignmentRole)


def visible(principal: Principal) -> Select[Assignment]:
    """Assignments of clients in the caller's scope, and the caller's (team's) own."""
    return select(Assignment).where(
        either_visible(principal, Assignment.client_id, Assignment.manager_id)
    )


def period_of(starts_at: ColumnElement[Any] | datetime, ends_at: Any) -> ColumnElement[Any]:
    """``tstzrange(starts_at, ends_at, '[)')`` for a candidate assignment."""
    return func.tstzrange(starts_at, ends_at, literal("[)"), type_=TSTZRANGE)


def active_at(at: datetime | ColumnElement[Any]) -> ColumnElement[bool]:
    return Assignment.period.contains(at)


async def get(session: AsyncSession, principal: Principal, assignment_id: uuid.UUID) -> Assignment:
    """The assignment, or :class:`NotFound`."""
    row = (
        await session.execute(visible(principal).where(Assignment.id == assignment_id))
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(f"Assignment {assignment_id} was not found.")
    return row


async def list_page(
    session: AsyncSession, principal: Principal, filters: AssignmentFilters
) -> tuple[list[Assignment], str | None]:
    """One keyset page of assignments matching ``filters`` (one statement)."""
    conditions: list[Any] = []
    if filters.client_id is not None:
        conditions.append(Assignment.client_id == filters.client_id)
    if filters.manager_id is not None:
        conditions.append(Assignment.manager_id == filters.manager_id)
    if filters.role is not None:
        conditions.append(Assignment.role == filters.role.value)
    if filters.active_at is not None:
        conditions.append(active_at(filters.active_at))
    stmt = keyset(
        visible(principal).where(*conditions), Assignment.created_at, Assignment.id, filters
    )
    rows = (await session.execute(stmt)).scalars().all()
    return page_of(rows, filters.limit)


def _conflict_condition(
    client_id: Any, manager_id: Any, role: str, period: ColumnElement[Any]
) -> ColumnElement[bool]:
    """Rows a new ``role`` assignment over ``period`` would collide with (mirrors the
    three exclusion constraints)."""
    same_role = Assignment.role == role if role in (PRIMARY, COVER) else literal(False)
    cross_role = (
        and_(
            Assignment.manager_id == manager_id,
            Assignment.role.in_((PRIMARY, COVER)),
            Assignment.role != role,
        )
        if role in (PRIMARY, COVER)
        else literal(False)
    )
    return and_(
        Assignment.client_id == client_id,
        Assignment.period.overlaps(period),
        or_(same_role, cross_role),
    )


async def conflicts(
    session: AsyncSession,
    *,
    client_id: uuid.UUID,
    manager_id: uuid.UUID,
    role: str,
    starts_at: datetime,
    ends_at: datetime | None,
    exclude_id: uuid.UUID | None = None,
) -> list[Assignment]:
    """Existing assignments that a new/changed one would overlap in a forbidden way."""
    stmt = select(Assignment).where(
        _conflict_condition(client_id, manager_id, role, period_of(starts_at, ends_at))
    )
    if exclude_id is not None:
        stmt = stmt.where(Assignment.id != exclude_id)
    return list((await session.execute(stmt.order_by(Assignment.starts_at))).scalars())


async def current_primary(
    session: AsyncSession, client_id: uuid.UUID, at: datetime
) -> Assignment | None:
    stmt = select(Assignment).where(
        Assignment.client_id == client_id, Assignment.role == PRIMARY, active_at(at)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def responsible(
    session: AsyncSession, client_id: uuid.UUID, at: datetime
) -> Assignment | None:
    """The cover active at ``at``, else the primary, else ``None`` (one statement)."""
    stmt = (
        select(Assignment)
        .where(
            Assignment.client_id == client_id,
            Assignment.role.in_((PRIMARY, COVER)),
            active_at(at),
        )
        .order_by((Assignment.role == COVER).desc())
        .limit(1)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


def responsible_condition(at: datetime | ColumnElement[Any]) -> ColumnElement[bool]:
    """``Assignment`` is the one that makes its manager responsible at ``at``: an active
    cover, or an active primary whose client has no active cover."""
    other = aliased(Assignment)
    covered = exists().where(
        other.client_id == Assignment.client_id,
        other.role == COVER,
        other.period.contains(at),
    )
    return and_(
        active_at(at),
        or_(Assignment.role == COVER, and_(Assignment.role == PRIMARY, ~covered)),
    )


def book_statement(
    manager_id: uuid.UUID, at: datetime, query: BookQuery, principal: Principal | None = None
) -> Select[Assignment, Client]:
    """The one statement behind :func:`book_page`: ``limit + 1`` rows of the clients
    ``manager_id`` is responsible for at ``at``, after ``query.cursor``."""
    stmt = (
        select(Assignment, Client)
        .join(Client, Client.id == Assignment.client_id)
        .where(Assignment.manager_id == manager_id, responsible_condition(at))
    )
    if principal is not None:
        stmt = stmt.where(clients_visible(principal, Client.id))
    if query.cursor:
        stmt = stmt.where(
            tuple_(Client.created_at, Client.id) > tuple_(*decode_cursor(query.cursor))
        )
    return stmt.order_by(Client.created_at, Client.id).limit(query.limit + 1)


async def book_page(
    session: AsyncSession,
    manager_id: uuid.UUID,
    at: datetime,
    query: BookQuery,
    principal: Principal | None = None,
) -> tuple[list[tuple[Assignment, Client]], str | None]:
    """One page of the clients ``manager_id`` is responsible for at ``at``, ordered by
    the client's ``(created_at, id)``; one statement (gist index on manager and period)."""
    stmt = book_statement(manager_id, at, query, principal)
    rows = [(a, c) for a, c in (await session.execute(stmt)).all()]
    page = rows[: query.limit]
    cursor = None
    if len(rows) > query.limit:
        last = page[-1][1]
        cursor = encode_cursor(last.created_at, last.id)
    return page, cursor


async def open_primaries(
    session: AsyncSession, manager_id: uuid.UUID, now: datetime
) -> list[Assignment]:
    """The manager's primary assignments that have not ended by ``now``."""
    stmt = (
        select(Assignment)
        .where(
            Assignment.manager_id == manager_id,
            Assignment.role == PRIMARY,
            or_(Assignment.ends_at.is_(None), Assignment.ends_at > now),
        )
        .order_by(Assignment.starts_at)
    )
    return list((await session.execute(stmt)).scalars())


async def end_open_non_primary(
    session: AsyncSession, manager_id: uuid.UUID, now: datetime, actor: str
) -> None:
    """End the manager's running secondary/cover assignments at ``now`` and drop those
    that have not started (through the ORM, so each change is audited)."""
    rows = (
        await session.execute(
            select(Assignment).where(
                Assignment.manager_id == manager_id,
                Assignment.role.in_((SECONDARY, COVER)),
                or_(Assignment.ends_at.is_(None), Assignment.ends_at > now),
            )
        )
    ).scalars()
    for row in rows:
        if row.starts_at > now:
            await session.delete(row)
        else:
            row.ends_at = now
            row.updated_by = actor
    await session.flush()
