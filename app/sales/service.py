"""Business rules of sales and FX rates."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.assignments import repository as assignments_repository
from app.clients import repository as clients_repository
from app.core.auth import Principal
from app.core.crud import apply_changes, changes_of, delete_row, new_row
from app.core.errors import Conflict, Unprocessable, register_constraint
from app.managers.models import Manager
from app.sales import repository
from app.sales.models import FxRate, Sale, SaleKind
from app.sales.schemas import FxRateCreate, SaleCreate, SaleUpdate

FUTURE_TOLERANCE = timedelta(minutes=5)

register_constraint(
    "uq_sales_external_ref",
    409,
    "A sale with this external_ref already exists.",
    "body.external_ref",
)
register_constraint(
    "ck_sales_refund_not_positive", 422, "A refund's amount cannot be positive.", "body.amount"
)
register_constraint(
    "uq_fx_rates_base_quote_valid_on",
    409,
    "A rate for this currency pair and date is already published.",
    "body.valid_on",
)


def _columns(values: dict[str, Any]) -> dict[str, Any]:
    if "amount" in values:
        money = values.pop("amount")
        values["amount"] = Decimal(money["amount"])
        values["currency"] = money["currency"]
    return values


def _check(kind: str, amount: Decimal, closed_at: datetime) -> None:
    if kind == SaleKind.refund and amount > 0:
        raise Unprocessable.field("body.amount", "A refund's amount cannot be positive.")
    if closed_at > datetime.now(UTC) + FUTURE_TOLERANCE:
        raise Unprocessable.field(
            "body.closed_at", "closed_at cannot be more than 5 minutes in the future."
        )


async def _check_manager(session: AsyncSession, manager_id: uuid.UUID) -> None:
    if await session.get(Manager, manager_id) is None:
        raise Unprocessable.field(
            "body.credited_manager_id", f"Manager {manager_id} does not exist."
        )


async def create_sale(session: AsyncSession, principal: Principal, data: SaleCreate) -> Sale:
    """Record a sale, credited by default to the manager responsible at ``closed_at``
    (the cover during an absence).

    Raises Unprocessable: unknown client, refund with a positive amount, closed_at ahead,
    unknown manager, or no manager given for a client unassigned at closed_at.
    Conflict: external_ref already used."""
    if await clients_repository.find(session, principal, data.client_id) is None:
        raise Unprocessable.field("body.client_id", f"Client {data.client_id} does not exist.")
    _check(data.kind, data.amount.value, data.closed_at)
    manager_id = data.credited_manager_id
    if manager_id is None:
        responsible = await assignments_repository.responsible(
            session, data.client_id, data.closed_at
        )
        if responsible is None:
            raise Unprocessable.field(
                "body.credited_manager_id",
                f"Client {data.client_id} had no responsible manager at "
                f"{data.closed_at.isoformat()}; give credited_manager_id.",
            )
        manager_id = responsible.manager_id
    else:
        await _check_manager(session, manager_id)
    values = _columns(data.model_dump())
    values["credited_manager_id"] = manager_id
    row = new_row(Sale, values, principal)
    session.add(row)
    await session.flush()
    await session.refresh(row)
    return row


async def update_sale(
    session: AsyncSession,
    principal: Principal,
    sale_id: uuid.UUID,
    data: SaleUpdate,
    if_match: str | None,
) -> Sale:
    """Correct a sale. Raises NotFound, PreconditionFailed, Unprocessable, Conflict."""
    row = await repository.get(session, principal, sale_id)
    changes = changes_of(data)
    for required in ("amount", "closed_at", "kind", "credited_manager_id"):
        if required in changes and changes[required] is None:
            raise Unprocessable.field(f"body.{required}", f"{required} cannot be null.")
    changes = _columns(changes)
    if changes.get("credited_manager_id"):
        await _check_manager(session, changes["credited_manager_id"])
    _check(
        changes.get("kind", row.kind),
        changes.get("amount", row.amount),
        changes.get("closed_at", row.closed_at),
    )
    await apply_changes(session, row, changes, principal, if_match)
    return row


async def delete_sale(
    session: AsyncSession, principal: Principal, sale_id: uuid.UUID, if_match: str | None
) -> None:
    """Delete a sale entered in error. Raises NotFound, PreconditionFailed."""
    row = await repository.get(session, principal, sale_id)
    await delete_row(session, row, if_match, "sale")


async def publish_rate(session: AsyncSession, principal: Principal, data: FxRateCreate) -> FxRate:
    """Publish a rate. Raises Conflict when (base, quote, valid_on) exists already."""
    existing = await repository.find_rate(session, data.base, data.quote, data.valid_on)
    if existing is not None:
        raise Conflict(
            f"A {data.base}/{data.quote} rate for {data.valid_on} is already published "
            f"({existing.id}); published rates are never changed.",
            extra={"existing_id": str(existing.id)},
        )
    values = data.model_dump()
    values["rate"] = Decimal(data.rate)
    row = new_row(FxRate, values, principal)
    session.add(row)
    await session.flush()
    await session.refresh(row)
    return row
