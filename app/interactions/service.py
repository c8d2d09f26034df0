"""Business rules for interactions: who may log a contact, and when."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.clients import repository as clients_repository
from app.core.auth import Principal, Role
from app.core.crud import apply_changes, changes_of, delete_row, new_row
from app.core.errors import Unprocessable
from app.interactions import repository
from app.interactions.models import Interaction
from app.interactions.schemas import InteractionCreate, InteractionUpdate
from app.managers.models import Manager

FUTURE_TOLERANCE = timedelta(minutes=5)
MANAGER_ROLES = frozenset({Role.account_manager, Role.sales_manager})


def _columns(values: dict[str, Any]) -> dict[str, Any]:
    """Schema fields → columns (``next_step`` is three columns)."""
    if "next_step" in values:
        step = values.pop("next_step")
        values["next_step_description"] = step["description"] if step else None
        values["next_step_due_at"] = step.get("due_at") if step else None
        values["next_step_done"] = step.get("done", False) if step else None
    return values


def _check_not_future(occurred_at: datetime) -> None:
    if occurred_at > datetime.now(UTC) + FUTURE_TOLERANCE:
        raise Unprocessable.field(
            "body.occurred_at", "occurred_at cannot be more than 5 minutes in the future."
        )


async def _check_may_log(
    session: AsyncSession,
    principal: Principal,
    client_id: uuid.UUID,
    manager_id: uuid.UUID,
    occurred_at: datetime,
) -> None:
    """Admins may backfill anything; anyone else logs only for a manager assigned to the
    client (primary, secondary or cover) at ``occurred_at``."""
    if Role.admin in principal.roles:
        return
    if Role.account_manager in principal.roles and manager_id != principal.manager_id:
        raise Unprocessable.field(
            "body.manager_id", "An account manager logs interactions only as themselves."
        )
    if not await repository.is_assigned_at(session, client_id, manager_id, occurred_at):
        raise Unprocessable.field(
            "body.occurred_at",
            f"Manager {manager_id} was not responsible for or assigned to client {client_id} "
            f"at {occurred_at.isoformat()}.",
        )


async def create_interaction(
    session: AsyncSession, principal: Principal, data: InteractionCreate
) -> Interaction:
    """Log an interaction.

    Raises Unprocessable: unknown or archived client, no manager given (and the caller
    is not one), unknown manager, ``occurred_at`` > 5 min ahead, or the manager was not
    assigned to the client then (admins exempt)."""
    client = await clients_repository.find(session, principal, data.client_id)
    if client is None:
        raise Unprocessable.field("body.client_id", f"Client {data.client_id} does not exist.")
    if client.archived_at is not None:
        raise Unprocessable.field("body.client_id", f"Client {data.client_id} is archived.")
    manager_id = data.manager_id
    if manager_id is None:
        if principal.manager_id is None or not principal.has_any(MANAGER_ROLES):
            raise Unprocessable.field(
                "body.manager_id", "manager_id is required when the caller is not a manager."
            )
        manager_id = principal.manager_id
    if await session.get(Manager, manager_id) is None:
        raise Unprocessable.field("body.manager_id", f"Manager {manager_id} does not exist.")
    _check_not_future(data.occurred_at)
    await _check_may_log(session, principal, data.client_id, manager_id, data.occurred_at)
    values = _columns(data.model_dump())
    values["manager_id"] = manager_id
    row = new_row(Interaction, values, principal)
    session.add(row)
    await session.flush()
    await session.refresh(row)
    return row


async def update_interaction(
    session: AsyncSession,
    principal: Principal,
    interaction_id: uuid.UUID,
    data: InteractionUpdate,
    if_match: str | None,
) -> Interaction:
    """Change an interaction (``next_step`` is replaced whole; null removes it).

    Raises NotFound, PreconditionFailed, Unprocessable (as on create)."""
    row = await repository.get(session, principal, interaction_id)
    changes = changes_of(data)
    for required in ("channel", "direction", "occurred_at", "subject", "decisions"):
        if required in changes and changes[required] is None:
            raise Unprocessable.field(f"body.{required}", f"{required} cannot be null.")
    if "occurred_at" in changes:
        _check_not_future(changes["occurred_at"])
        await _check_may_log(
            session, principal, row.client_id, row.manager_id, changes["occurred_at"]
        )
    await apply_changes(session, row, _columns(changes), principal, if_match)
    return row


async def delete_interaction(
    session: AsyncSession, principal: Principal, interaction_id: uuid.UUID, if_match: str | None
) -> None:
    """Delete an interaction. Raises NotFound, PreconditionFailed."""
    row = await repository.get(session, principal, interaction_id)
    await delete_row(session, row, if_match, "interaction")
