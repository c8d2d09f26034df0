"""Business rules for clients: hierarchy without cycles, archive instead of delete."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from app.clients import repository
from app.clients.models import Client
from app.clients.schemas import ClientCreate, ClientRead, ClientUpdate
from app.core.auth import Principal
from app.core.crud import apply_changes, changes_of, delete_row, new_row
from app.core.errors import Unprocessable, register_constraint
from app.core.http import check_if_match
from app.core.money import Money

register_constraint(
    "uq_clients_external_ref",
    409,
    "A client with this external_ref already exists.",
    "body.external_ref",
)
register_constraint(
    "ck_clients_no_cycle",
    422,
    "parent_id would make the account hierarchy a cycle.",
    "body.parent_id",
)
register_constraint(
    "ck_clients_not_own_parent", 422, "A client cannot be its own parent.", "body.parent_id"
)
register_constraint(
    "fk_clients_parent_id_clients", 422, "parent_id is not an existing client.", "body.parent_id"
)

_REQUIRED = ("name", "segment", "lifecycle_stage", "country", "currency")


def to_read(row: Row[Any]) -> ClientRead:
    """The response body of a row of ``repository.READ_COLUMNS``: the same as
    ``ClientRead.model_validate`` of the ORM ``Client`` (``annual_value`` and
    ``archived`` are that model's properties)."""
    values = dict(zip(repository.READ_KEYS, row, strict=True))
    amount = values.pop("annual_value_amount")
    currency = values.pop("annual_value_currency")
    values["annual_value"] = (
        Money.of(amount, currency) if amount is not None and currency is not None else None
    )
    values["archived"] = values["archived_at"] is not None
    return ClientRead.model_validate(values)


def _columns(values: dict[str, Any]) -> dict[str, Any]:
    """Schema fields → columns (``annual_value`` is two columns)."""
    if "annual_value" in values:
        money = values.pop("annual_value")
        values["annual_value_amount"] = Decimal(money["amount"]) if money else None
        values["annual_value_currency"] = money["currency"] if money else None
    return values


async def _check_parent(
    session: AsyncSession, principal: Principal, parent_id: uuid.UUID | None
) -> None:
    if parent_id is not None and await repository.find(session, principal, parent_id) is None:
        raise Unprocessable.field("body.parent_id", f"Client {parent_id} does not exist.")


async def create_client(session: AsyncSession, principal: Principal, data: ClientCreate) -> Client:
    """Insert a client. Raises Unprocessable (unknown parent) or Conflict (external_ref)."""
    await _check_parent(session, principal, data.parent_id)
    row = new_row(Client, _columns(data.model_dump()), principal)
    session.add(row)
    await session.flush()
    await session.refresh(row)
    return row


async def update_client(
    session: AsyncSession,
    principal: Principal,
    client_id: uuid.UUID,
    data: ClientUpdate,
    if_match: str | None,
) -> Client:
    """Apply a PATCH. Raises NotFound, PreconditionFailed, Unprocessable (cycle, unknown
    parent, a required field set to null) or Conflict (external_ref taken)."""
    row = await repository.get(session, principal, client_id)
    changes = changes_of(data)
    for required in _REQUIRED:
        if required in changes and changes[required] is None:
            raise Unprocessable.field(f"body.{required}", f"{required} cannot be null.")
    if "parent_id" in changes:
        await _check_parent(session, principal, changes["parent_id"])
    await apply_changes(session, row, _columns(changes), principal, if_match)
    return row


async def set_archived(
    session: AsyncSession,
    principal: Principal,
    client_id: uuid.UUID,
    archived: bool,
    if_match: str | None,
) -> Client:
    """Archive (or restore) a client. Archiving an archived client changes nothing.

    Raises NotFound, PreconditionFailed."""
    row = await repository.get(session, principal, client_id)
    check_if_match(if_match, row.version)
    if row.archived != archived:
        await apply_changes(
            session, row, {"archived_at": datetime.now(UTC) if archived else None}, principal, None
        )
    return row


async def delete_client(
    session: AsyncSession, principal: Principal, client_id: uuid.UUID, if_match: str | None
) -> None:
    """Delete a client without history; one with history is a 409 (archive it instead).

    Raises NotFound, PreconditionFailed, Conflict."""
    row = await repository.get(session, principal, client_id)
    await delete_row(session, row, if_match, "client")
