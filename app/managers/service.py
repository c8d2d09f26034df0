"""Business rules for managers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from app.assignments import repository as assignments_repository
from app.assignments import service as assignments_service
from app.core.auth import Principal
from app.core.crud import apply_changes, changes_of, delete_row, new_row
from app.core.errors import Conflict, Unprocessable, register_constraint
from app.managers import repository
from app.managers.models import Manager
from app.managers.schemas import ManagerCreate, ManagerRead, ManagerUpdate


def to_read(row: Row[Any]) -> ManagerRead:
    """The response body of a row of ``repository.READ_COLUMNS`` (the same as
    ``ManagerRead.model_validate`` of the ORM ``Manager``)."""
    return ManagerRead.model_validate(dict(zip(repository.READ_KEYS, row, strict=True)))


register_constraint(
    "uq_managers_email_lower", 409, "A manager with this e-mail already exists.", "body.email"
)
register_constraint(
    "uq_managers_external_ref",
    409,
    "A manager with this external_ref already exists.",
    "body.external_ref",
)
register_constraint(
    "ck_managers_no_cycle",
    422,
    "reports_to_id would make a manager report to themselves (a cycle).",
    "body.reports_to_id",
)
register_constraint(
    "ck_managers_not_own_lead",
    422,
    "A manager cannot report to themselves.",
    "body.reports_to_id",
)
register_constraint(
    "fk_managers_reports_to_id_managers",
    422,
    "reports_to_id is not an existing manager.",
    "body.reports_to_id",
)


async def _check_lead(
    session: AsyncSession, principal: Principal, lead_id: uuid.UUID | None
) -> None:
    """The lead must exist and be in the caller's scope (a sales_manager's team)."""
    if lead_id is not None and not await repository.exists(session, principal, lead_id):
        raise Unprocessable.field("body.reports_to_id", f"Manager {lead_id} does not exist.")


async def create_manager(
    session: AsyncSession, principal: Principal, data: ManagerCreate
) -> Manager:
    """Insert a manager. Raises Unprocessable (unknown lead) or Conflict (e-mail taken)."""
    await _check_lead(session, principal, data.reports_to_id)
    row = new_row(Manager, data.model_dump(), principal)
    session.add(row)
    await session.flush()
    await session.refresh(row)
    return row


async def update_manager(
    session: AsyncSession,
    principal: Principal,
    manager_id: uuid.UUID,
    data: ManagerUpdate,
    if_match: str | None,
) -> Manager:
    """Apply a PATCH. Raises NotFound, PreconditionFailed, Unprocessable (cycle, unknown
    lead, a required field set to null) or Conflict (e-mail taken)."""
    row = await repository.get(session, principal, manager_id)
    changes = changes_of(data)
    for required in ("email", "full_name", "role", "time_zone", "active"):
        if required in changes and changes[required] is None:
            raise Unprocessable.field(f"body.{required}", f"{required} cannot be null.")
    if "reports_to_id" in changes:
        await _check_lead(session, principal, changes["reports_to_id"])
    successor_id = changes.pop("successor_id", None)
    if changes.get("active") is False and row.active:
        await _release_book(session, principal, row, successor_id)
    elif successor_id is not None:
        raise Unprocessable.field("body.successor_id", "successor_id goes with active: false.")
    await apply_changes(session, row, changes, principal, if_match)
    return row


async def _release_book(
    session: AsyncSession, principal: Principal, row: Manager, successor_id: uuid.UUID | None
) -> None:
    """A manager leaves: open primaries go to the successor (or it is a 409 listing them);
    their open secondary and cover assignments end now."""
    now = datetime.now(UTC)
    open_primaries = await assignments_repository.open_primaries(session, row.id, now)
    if open_primaries and successor_id is None:
        raise Conflict(
            f"Manager {row.id} still holds {len(open_primaries)} open primary assignment(s); "
            "hand them over first or name a successor_id.",
            extra={
                "open_primary_assignments": [
                    {"id": str(a.id), "client_id": str(a.client_id)} for a in open_primaries
                ]
            },
        )
    if successor_id is not None:
        await assignments_service.hand_over_book(session, principal, row.id, successor_id)
    await assignments_repository.end_open_non_primary(session, row.id, now, principal.subject)


async def delete_manager(
    session: AsyncSession, principal: Principal, manager_id: uuid.UUID, if_match: str | None
) -> None:
    """Delete a manager without history. Raises NotFound, PreconditionFailed, Conflict."""
    row = await repository.get(session, principal, manager_id)
    await delete_row(session, row, if_match, "manager")
