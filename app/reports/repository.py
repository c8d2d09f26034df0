"""SQL of the reports: set-based, one statement per page (or per report), every read
limited to the caller's scope (``app.assignments.scope``) inside the statement."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    case,
    cast,
    exists,
    func,
    literal,
    select,
    true,
    tuple_,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, aliased

from app.assignments.models import Assignment, AssignmentRole
from app.assignments.repository import responsible_condition
from app.assignments.scope import UNRESTRICTED, clients_visible, managers_visible
from app.clients.models import Client
from app.complaints.models import Complaint, Status
from app.complaints.repository import breached, join_sla_policies
from app.core.auth import Principal, Role
from app.core.pagination import decode_cursor
from app.interactions.models import Interaction
from app.managers.models import Manager
from app.quotas.models import Quota
from app.quotas.repository import achievement_statement, quota_columns
from app.rules.engine import SEVERITY_POINTS
from app.rules.models import Flag, FlagStatus

RESOLVED_COMPLAINT = (Status.resolved.value, Status.closed.value)
COUNTED_FLAGS = (FlagStatus.open.value, FlagStatus.acknowledged.value)


def _team(manager_id: uuid.UUID) -> Select[Any]:
    """Ids of ``manager_id`` and everyone reporting to them, recursively. Its own CTE name,
    so it can sit in a statement next to the caller's scope (whose CTE is ``team_*``)."""
    team = (
        select(Manager.id.label("id"))
        .where(Manager.id == manager_id)
        .cte("report_team", recursive=True)
    )
    team = team.union(select(Manager.id).where(Manager.reports_to_id == team.c.id))
    return select(team.c.id)


# --- Account status -------------------------------------------------------------------


def health_points(severity: InstrumentedAttribute[str]) -> ColumnElement[int]:
    """SQL: a flag's health points by severity (``app.rules.engine.SEVERITY_POINTS``)."""
    return case(
        *((severity == name, literal(points)) for name, points in SEVERITY_POINTS.items()),
        else_=literal(0),
    )


def account_status_statement(
    principal: Principal,
    *,
    manager_id: uuid.UUID | None,
    include_team: bool,
    cursor: str | None,
    limit: int,
) -> Select[Any]:
    """``limit`` rows of the account status report after ``cursor`` (a client's
    ``(created_at, id)``), one statement: the visible, non-archived clients with their
    responsible manager now and LATERAL aggregates of flags, interactions and complaints.

    Each row: client_id, client_name, segment, country, created_at,
    responsible_manager_id, responsible_manager_name, health_score, last_contact_at,
    open_complaints, open_flags."""
    responsible = (
        select(Assignment.manager_id, Manager.full_name)
        .select_from(Assignment)
        .join(Manager, Manager.id == Assignment.manager_id)
        .where(Assignment.client_id == Client.id, responsible_condition(func.now()))
        .order_by((Assignment.role == AssignmentRole.cover.value).desc())
        .limit(1)
        .lateral("responsible")
    )
    flags = (
        select(
            func.coalesce(
                func.sum(health_points(Flag.severity)).filter(Flag.status.in_(COUNTED_FLAGS)), 0
            ).label("points"),
            func.count().label("open_flags"),
        )
        .where(Flag.client_id == Client.id, Flag.status != FlagStatus.resolved.value)
        .lateral("client_flags")
    )
    contact = (
        select(func.max(Interaction.occurred_at).label("last_contact_at"))
        .where(Interaction.client_id == Client.id)
        .lateral("contact")
    )
    complaints = (
        select(func.count().label("open_complaints"))
        .where(Complaint.client_id == Client.id, Complaint.status.not_in(RESOLVED_COMPLAINT))
        .lateral("open_complaints")
    )
    stmt = (
        select(
            Client.id.label("client_id"),
            Client.name.label("client_name"),
            Client.segment,
            Client.country,
            Client.created_at,
            responsible.c.manager_id.label("responsible_manager_id"),
            responsible.c.full_name.label("responsible_manager_name"),
            cast(func.greatest(0, 100 - flags.c.points), Integer).label("health_score"),
            contact.c.last_contact_at,
            complaints.c.open_complaints,
            flags.c.open_flags,
        )
        .select_from(Client)
        .outerjoin(responsible, true())
        .join(flags, true())
        .join(contact, true())
        .join(complaints, true())
        .where(clients_visible(principal, Client.id), Client.archived_at.is_(None))
    )
    if manager_id is not None:
        managers = _team(manager_id) if include_team else select(literal(manager_id))
        stmt = stmt.where(
            exists().where(
                Assignment.client_id == Client.id,
                Assignment.period.contains(func.now()),
                Assignment.manager_id.in_(managers),
            )
        )
    if cursor:
        stmt = stmt.where(tuple_(Client.created_at, Client.id) > tuple_(*decode_cursor(cursor)))
    return stmt.order_by(Client.created_at, Client.id).limit(limit)


async def account_status_rows(
    session: AsyncSession,
    principal: Principal,
    *,
    manager_id: uuid.UUID | None,
    include_team: bool,
    cursor: str | None,
    limit: int,
) -> list[Any]:
    """Up to ``limit`` rows of :func:`account_status_statement` (one statement)."""
    stmt = account_status_statement(
        principal, manager_id=manager_id, include_team=include_team, cursor=cursor, limit=limit
    )
    return list((await session.execute(stmt)).all())


# --- Quota attainment -----------------------------------------------------------------


async def quota_achievements(
    session: AsyncSession,
    principal: Principal,
    *,
    lead_id: uuid.UUID | None,
    start: datetime,
    end: datetime,
    as_of: datetime,
    time_zone: str,
) -> list[Any]:
    """Every visible quota inside ``[start, end)`` (of ``lead_id`` and their team, if
    given) with its achievement priced in its own currency and its manager's name, ordered
    by manager name; one statement (``quotas.repository.achievement_statement``)."""
    quotas_stmt = (
        select(*quota_columns(), Manager.full_name.label("manager_name"))
        .join(Manager, Manager.id == Quota.manager_id)
        .where(
            managers_visible(principal, Quota.manager_id),
            Quota.period_start >= start,
            Quota.period_end <= end,
        )
    )
    if lead_id is not None:
        quotas_stmt = quotas_stmt.where(Quota.manager_id.in_(_team(lead_id)))
    quotas = quotas_stmt.subquery("quotas")
    stmt = achievement_statement(quotas, quotas.c.target_currency, as_of, time_zone).order_by(
        quotas.c.manager_name,
        quotas.c.manager_id,
        quotas.c.metric,
        quotas.c.period_start,
        quotas.c.id,
    )
    return list((await session.execute(stmt)).all())


async def leads(
    session: AsyncSession, principal: Principal, lead_id: uuid.UUID | None
) -> list[Any]:
    """Visible managers with at least one direct report (``lead_id`` and the leads in
    their team, if given), as ``(id, full_name)`` by name.

    Only callers whose scope holds whole teams get any: unrestricted roles and
    sales_managers (their scope is their team, recursively). An account_manager's scope is
    themselves, so a roll-up of their reports would leave it."""
    if not (principal.has_any(UNRESTRICTED) or Role.sales_manager in principal.roles):
        return []
    report = aliased(Manager)
    stmt = select(Manager.id, Manager.full_name).where(
        managers_visible(principal, Manager.id),
        exists().where(report.reports_to_id == Manager.id),
    )
    if lead_id is not None:
        stmt = stmt.where(Manager.id.in_(_team(lead_id)))
    return list((await session.execute(stmt.order_by(Manager.full_name, Manager.id))).all())


# --- Complaints -----------------------------------------------------------------------


async def complaint_counts(
    session: AsyncSession,
    principal: Principal,
    received_from: datetime | None,
    received_to: datetime | None,
) -> list[Any]:
    """Visible complaints received in ``[received_from, received_to)`` counted per
    (status, severity, category), with how many of each are breached now (the
    ``breached`` expression of ``complaints.repository``); one statement, at most
    6 × 4 × 6 rows."""
    counts = select(
        Complaint.status,
        Complaint.severity,
        Complaint.category,
        func.count().label("total"),
        func.count().filter(breached).label("breached"),
    ).select_from(Complaint)
    stmt = join_sla_policies(counts).where(clients_visible(principal, Complaint.client_id))
    if received_from is not None:
        stmt = stmt.where(Complaint.received_at >= received_from)
    if received_to is not None:
        stmt = stmt.where(Complaint.received_at < received_to)
    stmt = stmt.group_by(Complaint.status, Complaint.severity, Complaint.category)
    return list((await session.execute(stmt)).all())
