"""Business rules of assignments: creation, ending, handover, cover during absence,
responsibility and the manager-leaves handover.

History is never rewritten: an assignment that has ended cannot be changed, an end
cannot be moved into the past, and only an assignment that has not started can be
deleted. Overlaps are refused by the database's exclusion constraints; the service
looks the conflicting rows up first so the 409 can name them.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, literal, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from app.assignments import repository
from app.assignments.models import Absence, Assignment, AssignmentRole
from app.assignments.schemas import (
    AbsenceCreate,
    AssignmentCreate,
    AssignmentUpdate,
    HandoverRequest,
)
from app.assignments.scope import managers_visible
from app.audit.listener import audit_objects
from app.clients import repository as clients_repository
from app.clients.models import Client
from app.core.auth import Principal
from app.core.crud import apply_changes, new_row
from app.core.errors import Conflict, Unprocessable, register_constraint
from app.core.http import check_if_match
from app.managers import repository as managers_repository
from app.managers.models import Manager

# Clock skew allowed between a caller's "now" and ours before a time counts as past.
PAST_TOLERANCE = timedelta(minutes=5)

register_constraint(
    "ex_assignments_one_primary",
    409,
    "The client already has a primary assignment overlapping this period.",
)
register_constraint(
    "ex_assignments_one_cover",
    409,
    "The client already has a cover assignment overlapping this period.",
)
register_constraint(
    "ex_assignments_cover_not_primary",
    409,
    "A manager cannot cover a client they are primary for at the same time.",
)
register_constraint(
    "ck_assignments_ends_after_start", 422, "ends_at must be after starts_at.", "body.ends_at"
)
register_constraint(
    "ck_assignments_manager_active", 422, "The manager is not active.", "body.manager_id"
)
register_constraint(
    "ck_assignments_client_not_archived", 422, "The client is archived.", "body.client_id"
)


def _now() -> datetime:
    return datetime.now(UTC)


def _summary(row: Assignment) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "role": row.role,
        "manager_id": str(row.manager_id),
        "client_id": str(row.client_id),
        "starts_at": row.starts_at.isoformat(),
        "ends_at": row.ends_at.isoformat() if row.ends_at else None,
    }


def _conflict(rows: list[Assignment]) -> Conflict:
    first = rows[0]
    ends = first.ends_at.isoformat() if first.ends_at else "open-ended"
    return Conflict(
        f"Overlaps {first.role} assignment {first.id} of manager {first.manager_id} "
        f"({first.starts_at.isoformat()} to {ends}).",
        extra={"conflicting_assignments": [_summary(r) for r in rows]},
    )


async def _check_no_conflict(
    session: AsyncSession,
    *,
    client_id: uuid.UUID,
    manager_id: uuid.UUID,
    role: str,
    starts_at: datetime,
    ends_at: datetime | None,
    exclude_id: uuid.UUID | None = None,
) -> None:
    rows = await repository.conflicts(
        session,
        client_id=client_id,
        manager_id=manager_id,
        role=role,
        starts_at=starts_at,
        ends_at=ends_at,
        exclude_id=exclude_id,
    )
    if rows:
        raise _conflict(rows)


async def _usable_manager(
    session: AsyncSession, manager_id: uuid.UUID, field: str, principal: Principal | None = None
) -> Manager:
    """An existing, active manager; with ``principal``, also one in the caller's scope."""
    manager = await session.get(Manager, manager_id)
    if manager is not None and principal is not None:
        visible = await session.execute(
            select(Manager.id).where(
                Manager.id == manager_id, managers_visible(principal, Manager.id)
            )
        )
        if visible.scalar_one_or_none() is None:
            manager = None
    if manager is None:
        raise Unprocessable.field(field, f"Manager {manager_id} does not exist.")
    if not manager.active:
        raise Unprocessable.field(field, f"Manager {manager_id} is not active.")
    return manager


async def _usable_client(session: AsyncSession, client_id: uuid.UUID, field: str) -> Client:
    client = await session.get(Client, client_id)
    if client is None:
        raise Unprocessable.field(field, f"Client {client_id} does not exist.")
    if client.archived_at is not None:
        raise Unprocessable.field(field, f"Client {client_id} is archived.")
    return client


async def _insert(
    session: AsyncSession, principal: Principal, values: dict[str, Any]
) -> Assignment:
    await _check_no_conflict(
        session,
        client_id=values["client_id"],
        manager_id=values["manager_id"],
        role=values["role"],
        starts_at=values["starts_at"],
        ends_at=values.get("ends_at"),
    )
    row = new_row(Assignment, values, principal)
    session.add(row)
    await session.flush()
    await session.refresh(row)
    return row


async def create_assignment(
    session: AsyncSession, principal: Principal, data: AssignmentCreate
) -> Assignment:
    """Create an assignment.

    Raises:
        Unprocessable: unknown or inactive manager, unknown or archived client.
        Conflict: it would overlap a primary/cover of the client, or make a manager cover
            a client they are primary for (the body names the conflicting assignments).
    """
    await _usable_client(session, data.client_id, "body.client_id")
    await _usable_manager(session, data.manager_id, "body.manager_id", principal)
    values = data.model_dump()
    values["starts_at"] = data.starts_at or _now()
    if values["ends_at"] is not None and values["ends_at"] <= values["starts_at"]:
        raise Unprocessable.field("body.ends_at", "ends_at must be after starts_at.")
    return await _insert(session, principal, values)


async def update_assignment(
    session: AsyncSession,
    principal: Principal,
    assignment_id: uuid.UUID,
    data: AssignmentUpdate,
    if_match: str | None,
) -> Assignment:
    """End (or re-open, or extend) an assignment; the new end may not be in the past.

    Raises:
        NotFound, PreconditionFailed,
        Conflict: the assignment has already ended (history is kept as it was), or the
            new range overlaps another assignment.
        Unprocessable: the new end is in the past or not after the start.
    """
    row = await repository.get(session, principal, assignment_id)
    check_if_match(if_match, row.version)
    changes = data.model_dump(exclude_unset=True)
    now = _now()
    if changes and row.ends_at is not None and row.ends_at <= now:
        raise Conflict(
            f"Assignment {row.id} ended at {row.ends_at.isoformat()}; history is never rewritten."
        )
    if "ends_at" in changes:
        ends_at = changes["ends_at"]
        if ends_at is not None:
            if ends_at <= row.starts_at:
                raise Unprocessable.field("body.ends_at", "ends_at must be after starts_at.")
            if row.starts_at <= now and ends_at < now - PAST_TOLERANCE:
                raise Unprocessable.field(
                    "body.ends_at", "An assignment cannot be ended in the past."
                )
        if ends_at is None or row.ends_at is None or ends_at > row.ends_at:
            await _check_no_conflict(
                session,
                client_id=row.client_id,
                manager_id=row.manager_id,
                role=row.role,
                starts_at=row.starts_at,
                ends_at=ends_at,
                exclude_id=row.id,
            )
    await apply_changes(session, row, changes, principal, None)
    return row


async def delete_assignment(
    session: AsyncSession, principal: Principal, assignment_id: uuid.UUID, if_match: str | None
) -> None:
    """Delete an assignment that has not started yet.

    Raises NotFound, PreconditionFailed, Conflict (it has started: end it instead)."""
    row = await repository.get(session, principal, assignment_id)
    check_if_match(if_match, row.version)
    if row.starts_at <= _now():
        raise Conflict(
            f"Assignment {row.id} has started; end it (PATCH ends_at) instead of deleting it."
        )
    await session.delete(row)
    await session.flush()


async def handover(
    session: AsyncSession, principal: Principal, client_id: uuid.UUID, data: HandoverRequest
) -> tuple[Assignment | None, Assignment, datetime]:
    """End the client's primary at ``at`` and start ``to_manager_id``'s at the same instant,
    in the caller's transaction.

    Returns ``(ended, started, at)``. Raises:
        NotFound: unknown client.
        Unprocessable: ``at`` in the past, archived client, unknown or inactive manager.
        Conflict: the manager is already primary, a concurrent handover won, or the new
            primary would overlap another assignment.
    """
    client = await clients_repository.get(session, principal, client_id)
    if client.archived_at is not None:
        raise Unprocessable(f"Client {client_id} is archived.")
    await _usable_manager(session, data.to_manager_id, "body.to_manager_id", principal)
    now = _now()
    at = data.at or now
    if at < now - PAST_TOLERANCE:
        raise Unprocessable.field(
            "body.at", "A handover cannot be backdated; history is never rewritten."
        )
    current = await repository.current_primary(session, client_id, at)
    planned_end: datetime | None = None
    if current is not None:
        if current.manager_id == data.to_manager_id:
            raise Conflict(f"Manager {data.to_manager_id} is already the primary at {at}.")
        planned_end = current.ends_at
        try:
            if current.starts_at == at:
                raise Conflict("The current primary assignment starts at that same instant.")
            await apply_changes(session, current, {"ends_at": at}, principal, None)
        except StaleDataError as exc:
            raise Conflict("Another handover of this client happened at the same time.") from exc
    started = await _insert(
        session,
        principal,
        {
            "client_id": client_id,
            "manager_id": data.to_manager_id,
            "role": AssignmentRole.primary.value,
            "starts_at": at,
            "ends_at": planned_end,
            "reason": data.reason,
        },
    )
    return current, started, at


async def create_absence(
    session: AsyncSession, principal: Principal, manager_id: uuid.UUID, data: AbsenceCreate
) -> tuple[Absence, list[Assignment]]:
    """Record an absence and, in one statement, a cover assignment for every
    non-archived client the absent manager is primary for during the window (each cover
    is the overlap of the window and that primary assignment, so it ends by itself).

    Raises:
        NotFound: unknown absent manager.
        Unprocessable: cover is the absent manager, unknown or inactive.
        Conflict: a client already has a cover in the window, or the cover manager is
            primary for one of those clients then (all or nothing: nothing is written).
    """
    await managers_repository.get(session, principal, manager_id)
    if data.cover_manager_id == manager_id:
        raise Unprocessable.field("body.cover_manager_id", "The cover must be another manager.")
    await _usable_manager(session, data.cover_manager_id, "body.cover_manager_id", principal)
    absence = new_row(Absence, {"manager_id": manager_id, **data.model_dump()}, principal)
    session.add(absence)
    await session.flush()

    window = repository.period_of(data.starts_at, data.ends_at)
    primary = select(
        Assignment.client_id,
        Assignment.period.op("*")(window).label("span"),
    ).where(
        Assignment.manager_id == manager_id,
        Assignment.role == AssignmentRole.primary.value,
        Assignment.period.overlaps(window),
        Assignment.client_id.in_(select(Client.id).where(Client.archived_at.is_(None))),
    )
    spans = primary.subquery()
    candidates = select(
        spans.c.client_id,
        func.lower(spans.c.span).label("starts_at"),
        func.upper(spans.c.span).label("ends_at"),
    ).subquery()
    blocking = (
        select(Assignment)
        .join(candidates, candidates.c.client_id == Assignment.client_id)
        .where(
            Assignment.period.overlaps(
                repository.period_of(candidates.c.starts_at, candidates.c.ends_at)
            ),
            (Assignment.role == AssignmentRole.cover.value)
            | (
                (Assignment.manager_id == data.cover_manager_id)
                & (Assignment.role == AssignmentRole.primary.value)
            ),
        )
        .order_by(Assignment.starts_at)
    )
    found = list((await session.execute(blocking)).scalars())
    if found:
        raise _conflict(found)
    inserted = await session.execute(
        insert(Assignment)
        .from_select(
            [
                "id",
                "client_id",
                "manager_id",
                "role",
                "starts_at",
                "ends_at",
                "reason",
                "absence_id",
                "version",
                "created_by",
                "updated_by",
            ],
            select(
                func.gen_random_uuid(),
                candidates.c.client_id,
                literal(data.cover_manager_id),
                literal(AssignmentRole.cover.value),
                candidates.c.starts_at,
                candidates.c.ends_at,
                literal(data.reason),
                literal(absence.id),
                literal(1),
                literal(principal.subject),
                literal(principal.subject),
            ),
        )
        .returning(Assignment.id)
    )
    ids = [r[0] for r in inserted]
    covers = list(
        (
            await session.execute(
                select(Assignment).where(Assignment.id.in_(ids)).order_by(Assignment.starts_at)
            )
        ).scalars()
    )
    await session.run_sync(lambda sync: audit_objects(sync, covers, "create"))
    await session.refresh(absence)
    return absence, covers


async def hand_over_book(
    session: AsyncSession, principal: Principal, manager_id: uuid.UUID, successor_id: uuid.UUID
) -> list[Assignment]:
    """A leaving manager's open primaries pass to ``successor_id`` now (planned ends kept);
    primaries that have not started yet are handed over whole. Returns the new rows.

    Raises Unprocessable (successor unknown, inactive or the same manager), Conflict."""
    if successor_id == manager_id:
        raise Unprocessable.field("body.successor_id", "The successor must be someone else.")
    await _usable_manager(session, successor_id, "body.successor_id", principal)
    now = _now()
    started: list[Assignment] = []
    for row in await repository.open_primaries(session, manager_id, now):
        starts_at = max(row.starts_at, now)
        planned_end = row.ends_at
        if row.starts_at >= now:
            await session.delete(row)
            await session.flush()
        else:
            await apply_changes(session, row, {"ends_at": now}, principal, None)
        started.append(
            await _insert(
                session,
                principal,
                {
                    "client_id": row.client_id,
                    "manager_id": successor_id,
                    "role": AssignmentRole.primary.value,
                    "starts_at": starts_at,
                    "ends_at": planned_end,
                    "reason": "handover: manager left",
                },
            )
        )
    return started
