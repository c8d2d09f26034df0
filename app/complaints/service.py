"""Business rules of complaints: the status machine, its history and SLA bookkeeping."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.assignments import repository as assignments_repository
from app.clients import repository as clients_repository
from app.complaints import repository
from app.complaints.models import (
    CLOCK_RUNNING,
    TRANSITIONS,
    Complaint,
    ComplaintTransition,
    SlaPolicy,
    Status,
)
from app.complaints.schemas import (
    ComplaintCreate,
    ComplaintUpdate,
    SlaPolicyCreate,
    SlaPolicyUpdate,
    TransitionCreate,
)
from app.core.auth import Principal
from app.core.crud import apply_changes, changes_of, new_row
from app.core.errors import Conflict, Unprocessable, register_constraint
from app.core.http import check_if_match
from app.managers.models import Manager

FUTURE_TOLERANCE = timedelta(minutes=5)

register_constraint(
    "uq_sla_policies_severity_segment",
    409,
    "A policy for this severity and segment already exists.",
    "body.segment",
)
register_constraint(
    "ck_sla_policies_resolution_after",
    422,
    "resolution_hours must be at least first_response_hours.",
    "body.resolution_hours",
)
register_constraint(
    "ck_complaints_resolution_when_resolved",
    422,
    "A resolved or closed complaint needs a resolution text.",
    "body.resolution",
)


def _now() -> datetime:
    return datetime.now(UTC)


async def _check_assignee(session: AsyncSession, assignee_id: uuid.UUID | None) -> None:
    if assignee_id is not None and await session.get(Manager, assignee_id) is None:
        raise Unprocessable.field("body.assignee_id", f"Manager {assignee_id} does not exist.")


async def create_complaint(
    session: AsyncSession, principal: Principal, data: ComplaintCreate
) -> uuid.UUID:
    """Record a complaint (status ``open``, clock running from ``received_at``) and the
    first history row. Returns its id.

    Raises Unprocessable: unknown client, ``received_at`` ahead by more than 5 minutes,
    unknown assignee."""
    if await clients_repository.find(session, principal, data.client_id) is None:
        raise Unprocessable.field("body.client_id", f"Client {data.client_id} does not exist.")
    now = _now()
    received_at = data.received_at or now
    if received_at > now + FUTURE_TOLERANCE:
        raise Unprocessable.field(
            "body.received_at", "received_at cannot be more than 5 minutes in the future."
        )
    assignee_id = data.assignee_id
    if assignee_id is None:
        responsible = await assignments_repository.responsible(session, data.client_id, received_at)
        assignee_id = responsible.manager_id if responsible else None
    else:
        await _check_assignee(session, assignee_id)
    values = data.model_dump()
    values.update(
        received_at=received_at,
        assignee_id=assignee_id,
        status=Status.open.value,
        clock_since=received_at,
        clock_running=True,
    )
    complaint = new_row(Complaint, values, principal)
    session.add(complaint)
    await session.flush()
    session.add(
        ComplaintTransition(
            complaint_id=complaint.id,
            client_id=complaint.client_id,
            from_status=None,
            to_status=Status.open.value,
            at=received_at,
            actor=principal.subject,
        )
    )
    await session.flush()
    return complaint.id


async def update_complaint(
    session: AsyncSession,
    principal: Principal,
    complaint_id: uuid.UUID,
    data: ComplaintUpdate,
    if_match: str | None,
) -> None:
    """Change a complaint's details (not its status). A severity change re-times the SLA.

    Raises NotFound, PreconditionFailed, Unprocessable."""
    row = await repository.get_for_update(session, principal, complaint_id)
    changes = changes_of(data)
    for required in ("title", "category", "severity"):
        if required in changes and changes[required] is None:
            raise Unprocessable.field(f"body.{required}", f"{required} cannot be null.")
    if changes.get("assignee_id") is not None:
        await _check_assignee(session, changes["assignee_id"])
    await apply_changes(session, row, changes, principal, if_match)


async def transition(
    session: AsyncSession, principal: Principal, complaint_id: uuid.UUID, data: TransitionCreate
) -> ComplaintTransition:
    """Move a complaint along the status machine and record who did it and when.

    The row is locked, so concurrent transitions apply one after the other. Raises:
        NotFound.
        Conflict: ``to`` is not allowed from the current status (names the allowed ones).
        Unprocessable: ``resolved`` without a resolution text; ``at`` before the previous
            transition or more than 5 minutes ahead.
    """
    complaint = await repository.get_for_update(session, principal, complaint_id)
    current = Status(complaint.status)
    allowed = TRANSITIONS[current]
    if data.to not in allowed:
        names = ", ".join(s.value for s in allowed) or "none (closed is final)"
        raise Conflict(
            f"A complaint in status {current.value} cannot move to {data.to.value}; "
            f"allowed: {names}.",
            extra={"current_status": current.value, "allowed": [s.value for s in allowed]},
        )
    now = _now()
    at = data.at or now
    if at > now + FUTURE_TOLERANCE:
        raise Unprocessable.field("body.at", "at cannot be more than 5 minutes in the future.")
    if at < complaint.clock_since:
        raise Unprocessable.field(
            "body.at",
            f"at cannot be before the previous transition ({complaint.clock_since.isoformat()}).",
        )
    if data.resolution is not None:
        complaint.resolution = data.resolution
    if data.root_cause is not None:
        complaint.root_cause = data.root_cause
    if data.to == Status.resolved and not complaint.resolution:
        raise Unprocessable.field(
            "body.resolution", "Resolving a complaint needs a resolution text."
        )
    if complaint.clock_running:
        complaint.active_time = complaint.active_time + (at - complaint.clock_since)
    complaint.clock_since = at
    complaint.clock_running = data.to in CLOCK_RUNNING
    if current == Status.open and complaint.first_responded_at is None:
        complaint.first_responded_at = at
    if data.to == Status.resolved:
        complaint.resolved_at = at
    elif data.to == Status.in_progress and current == Status.resolved:
        complaint.resolved_at = None
    complaint.status = data.to.value
    complaint.updated_by = principal.subject
    record = ComplaintTransition(
        complaint_id=complaint.id,
        client_id=complaint.client_id,
        from_status=current.value,
        to_status=data.to.value,
        at=at,
        actor=principal.subject,
        note=data.note,
    )
    session.add(record)
    await session.flush()
    await session.refresh(record)
    return record


async def create_policy(
    session: AsyncSession, principal: Principal, data: SlaPolicyCreate
) -> SlaPolicy:
    """Add a policy (e.g. for one segment). Raises Conflict (exists), Unprocessable."""
    if data.resolution_hours < data.first_response_hours:
        raise Unprocessable.field(
            "body.resolution_hours", "resolution_hours must be at least first_response_hours."
        )
    row = new_row(SlaPolicy, data.model_dump(), principal)
    session.add(row)
    await session.flush()
    await session.refresh(row)
    return row


async def update_policy(
    session: AsyncSession,
    principal: Principal,
    policy_id: uuid.UUID,
    data: SlaPolicyUpdate,
    if_match: str | None,
) -> SlaPolicy:
    """Change targets; every complaint's due times follow on the next read."""
    row = await repository.get_policy(session, policy_id)
    changes = {k: v for k, v in changes_of(data).items() if v is not None}
    await apply_changes(session, row, changes, principal, if_match)
    return row


async def delete_policy(
    session: AsyncSession, principal: Principal, policy_id: uuid.UUID, if_match: str | None
) -> None:
    """Delete a segment-specific policy; a severity's default cannot go (409)."""
    row = await repository.get_policy(session, policy_id)
    if row.segment is None:
        raise Conflict("The default policy of a severity cannot be deleted; change it instead.")
    check_if_match(if_match, row.version)
    await session.delete(row)
    await session.flush()
