"""SQL for complaints, their history and SLA policies.

SLA figures are SQL expressions over the complaint row, its client's segment and the
policy (segment-specific, else the severity's default), so a policy change shows on the
next read and ``breached=true`` is a WHERE clause, not a Python filter.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, TypeVarTuple

from sqlalchemy import (
    ColumnElement,
    DateTime,
    Interval,
    Select,
    and_,
    case,
    func,
    literal_column,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.assignments.scope import clients_visible
from app.clients.models import Client
from app.complaints.models import Complaint, ComplaintTransition, SlaPolicy, Status
from app.complaints.schemas import ComplaintFilters, ComplaintRead, SlaClock, SlaRead
from app.core.auth import Principal
from app.core.errors import NotFound
from app.core.pagination import PageQuery, decode_cursor, encode_cursor, keyset

_segment_policy = aliased(SlaPolicy, name="segment_policy")
_default_policy = aliased(SlaPolicy, name="default_policy")
_ZERO = literal_column("interval '0'", type_=Interval)
_Ts = TypeVarTuple("_Ts")


def _hours(value: ColumnElement[Any]) -> ColumnElement[Any]:
    return func.make_interval(0, 0, 0, 0, value, type_=Interval)


first_response_hours = func.coalesce(
    _segment_policy.first_response_hours, _default_policy.first_response_hours
).label("first_response_hours")
resolution_hours = func.coalesce(
    _segment_policy.resolution_hours, _default_policy.resolution_hours
).label("resolution_hours")
_target = _hours(resolution_hours.element)
first_response_due_at = type_coerce(
    Complaint.received_at + _hours(first_response_hours.element), DateTime(timezone=True)
)
first_response_breached = func.coalesce(Complaint.first_responded_at, func.now()) > (
    first_response_due_at
)
_elapsed = Complaint.active_time + case(
    (Complaint.clock_running, func.now() - Complaint.clock_since), else_=_ZERO
)
resolution_breached = _elapsed > _target
# The exact instant the running time reaches the target, walked from the history
# (migration 0007): correct across pauses, reopenings and DST changes.
resolution_due_at = func.complaint_resolution_due_at(
    Complaint.id, resolution_hours.element * 3600, type_=DateTime(timezone=True)
)
breached = or_(first_response_breached, resolution_breached)


def join_sla_policies(stmt: Select[*_Ts]) -> Select[*_Ts]:
    """``stmt`` (selecting from ``complaints``) joined to the client and its SLA policies,
    which the SLA expressions of this module (``breached`` etc.) need."""
    return (
        stmt.join(Client, Client.id == Complaint.client_id)
        .outerjoin(
            _segment_policy,
            and_(
                _segment_policy.severity == Complaint.severity,
                _segment_policy.segment == Client.segment,
            ),
        )
        .outerjoin(
            _default_policy,
            and_(
                _default_policy.severity == Complaint.severity,
                _default_policy.segment.is_(None),
            ),
        )
    )


def _with_sla(stmt: Select[Any]) -> Select[Any]:
    return join_sla_policies(
        stmt.add_columns(
            first_response_hours,
            resolution_hours,
            first_response_due_at.label("first_response_due_at"),
            first_response_breached.label("first_response_breached"),
            resolution_due_at.label("resolution_due_at"),
            resolution_breached.label("resolution_breached"),
        )
    )


def visible(principal: Principal) -> Select[Complaint]:
    """Complaint records of clients in the caller's scope (``app.assignments.scope``)."""
    return select(Complaint).where(clients_visible(principal, Complaint.client_id))


def to_read(row: Any) -> ComplaintRead:
    """A ``(Complaint, sla columns...)`` row as the API shape."""
    complaint: Complaint = row[0]
    status = Status(complaint.status)
    clock = (
        SlaClock.running
        if complaint.clock_running
        else SlaClock.paused
        if status == Status.waiting_on_client
        else SlaClock.stopped
    )
    sla = SlaRead(
        first_response_hours=row.first_response_hours,
        resolution_hours=row.resolution_hours,
        first_response_due_at=row.first_response_due_at,
        first_responded_at=complaint.first_responded_at,
        first_response_breached=row.first_response_breached,
        resolution_due_at=row.resolution_due_at,
        resolution_breached=row.resolution_breached,
        clock=clock,
    )
    fields = {
        name: getattr(complaint, name)
        for name in ComplaintRead.model_fields
        if name not in ("sla", "breached")
    }
    return ComplaintRead(
        **fields, sla=sla, breached=sla.first_response_breached or sla.resolution_breached
    )


async def get_for_update(
    session: AsyncSession, principal: Principal, complaint_id: uuid.UUID
) -> Complaint:
    """The complaint row, locked until the transaction ends; :class:`NotFound` if absent."""
    row = (
        await session.execute(
            visible(principal).where(Complaint.id == complaint_id).with_for_update()
        )
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(f"Complaint {complaint_id} was not found.")
    return row


async def get_read(
    session: AsyncSession, principal: Principal, complaint_id: uuid.UUID
) -> ComplaintRead:
    """The complaint with its SLA figures (one statement), or :class:`NotFound`."""
    stmt = _with_sla(visible(principal)).where(Complaint.id == complaint_id)
    row = (await session.execute(stmt)).one_or_none()
    if row is None:
        raise NotFound(f"Complaint {complaint_id} was not found.")
    return to_read(row)


async def list_page(
    session: AsyncSession, principal: Principal, filters: ComplaintFilters
) -> tuple[list[ComplaintRead], str | None]:
    """One keyset page of complaints with SLA figures (one statement)."""
    conditions: list[Any] = []
    if filters.client_id is not None:
        conditions.append(Complaint.client_id == filters.client_id)
    if filters.assignee_id is not None:
        conditions.append(Complaint.assignee_id == filters.assignee_id)
    if filters.status is not None:
        conditions.append(Complaint.status == filters.status.value)
    if filters.severity is not None:
        conditions.append(Complaint.severity == filters.severity.value)
    if filters.category is not None:
        conditions.append(Complaint.category == filters.category.value)
    if filters.received_from is not None:
        conditions.append(Complaint.received_at >= filters.received_from)
    if filters.received_to is not None:
        conditions.append(Complaint.received_at < filters.received_to)
    if filters.breached is not None:
        conditions.append(breached if filters.breached else ~breached)
    stmt = keyset(
        _with_sla(visible(principal)).where(*conditions),
        Complaint.created_at,
        Complaint.id,
        filters,
    )
    rows = (await session.execute(stmt)).all()
    items = [to_read(r) for r in rows[: filters.limit]]
    cursor = None
    if len(rows) > filters.limit:
        last = items[-1]
        cursor = encode_cursor(last.created_at, last.id)
    return items, cursor


async def history_page(
    session: AsyncSession, complaint_id: uuid.UUID, page: PageQuery
) -> tuple[list[ComplaintTransition], str | None]:
    """One page of a complaint's transitions in order ``(at, seq)``."""
    stmt = select(ComplaintTransition).where(ComplaintTransition.complaint_id == complaint_id)
    if page.cursor:
        at, seq = decode_cursor(page.cursor, datetime, int)
        stmt = stmt.where(
            or_(
                ComplaintTransition.at > at,
                and_(ComplaintTransition.at == at, ComplaintTransition.seq > seq),
            )
        )
    stmt = stmt.order_by(ComplaintTransition.at, ComplaintTransition.seq).limit(page.limit + 1)
    rows = list((await session.execute(stmt)).scalars())
    items = rows[: page.limit]
    cursor = encode_cursor(items[-1].at, items[-1].seq) if len(rows) > page.limit else None
    return items, cursor


async def exists(session: AsyncSession, principal: Principal, complaint_id: uuid.UUID) -> None:
    """Raise :class:`NotFound` unless the complaint exists and is visible."""
    found = await session.execute(
        visible(principal).with_only_columns(Complaint.id).where(Complaint.id == complaint_id)
    )
    if found.scalar_one_or_none() is None:
        raise NotFound(f"Complaint {complaint_id} was not found.")


async def get_policy(session: AsyncSession, policy_id: uuid.UUID) -> SlaPolicy:
    row = await session.get(SlaPolicy, policy_id)
    if row is None:
        raise NotFound(f"SLA policy {policy_id} was not found.")
    return row


async def policy_page(session: AsyncSession, page: PageQuery) -> tuple[list[SlaPolicy], str | None]:
    stmt = keyset(select(SlaPolicy), SlaPolicy.created_at, SlaPolicy.id, page)
    rows = list((await session.execute(stmt)).scalars())
    items = rows[: page.limit]
    cursor = encode_cursor(items[-1].created_at, items[-1].id) if len(rows) > page.limit else None
    return items, cursor
