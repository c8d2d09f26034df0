"""SQL for sales and FX rates, including the dated-rate lookup used by attainment."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import Date, Select, cast, func, literal, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from app.assignments.scope import clients_visible
from app.core.auth import Principal
from app.core.errors import NotFound
from app.core.pagination import keyset, page_of
from app.sales.models import FxRate, Sale
from app.sales.schemas import FxRateFilters, SaleFilters, SaleRead


def visible(principal: Principal) -> Select[Sale]:
    """Sale records of clients in the caller's scope (``app.assignments.scope``)."""
    return select(Sale).where(clients_visible(principal, Sale.client_id))


def to_read(row: Sale) -> SaleRead:
    values = {name: getattr(row, name) for name in SaleRead.model_fields if name != "amount"}
    return SaleRead(**values, amount=row.money)


async def get(session: AsyncSession, principal: Principal, sale_id: uuid.UUID) -> Sale:
    """The sale, or :class:`NotFound`."""
    row = (await session.execute(visible(principal).where(Sale.id == sale_id))).scalar_one_or_none()
    if row is None:
        raise NotFound(f"Sale {sale_id} was not found.")
    return row


async def list_page(
    session: AsyncSession, principal: Principal, filters: SaleFilters
) -> tuple[list[Sale], str | None]:
    """One keyset page of sales matching ``filters`` (one statement)."""
    conditions: list[Any] = []
    if filters.client_id is not None:
        conditions.append(Sale.client_id == filters.client_id)
    if filters.credited_manager_id is not None:
        conditions.append(Sale.credited_manager_id == filters.credited_manager_id)
    if filters.kind is not None:
        conditions.append(Sale.kind == filters.kind.value)
    if filters.closed_from is not None:
        conditions.append(Sale.closed_at >= filters.closed_from)
    if filters.closed_to is not None:
        conditions.append(Sale.closed_at < filters.closed_to)
    stmt = keyset(visible(principal).where(*conditions), Sale.created_at, Sale.id, filters)
    return page_of((await session.execute(stmt)).scalars().all(), filters.limit)


def local_date(instant: Any, time_zone: str) -> Any:
    """SQL: the calendar date of ``instant`` in ``time_zone``."""
    return cast(func.timezone(time_zone, instant), Date)


def rate_lookup(base: Any, quote: Any, on: Any) -> Any:
    """A LATERAL subquery with the latest rate base→quote published on or before ``on``
    (a direct rate, or the inverse of quote→base, whichever is newer): columns ``rate``
    and ``valid_on``; no row when none exists."""
    # correlate_except: base/quote/on come from the enclosing query, through the union.
    direct = (
        select(FxRate.rate.label("rate"), FxRate.valid_on.label("valid_on"))
        .where(FxRate.base == base, FxRate.quote == quote, FxRate.valid_on <= on)
        .correlate_except(FxRate)
        # one row per arm: a backward scan of uq_fx_rates_base_quote_valid_on
        .order_by(FxRate.valid_on.desc())
        .limit(1)
    )
    inverse = (
        select((literal(Decimal(1)) / FxRate.rate).label("rate"), FxRate.valid_on.label("valid_on"))
        .where(FxRate.base == quote, FxRate.quote == base, FxRate.valid_on <= on)
        .correlate_except(FxRate)
        .order_by(FxRate.valid_on.desc())
        .limit(1)
    )
    both = union_all(direct, inverse).subquery("fx_candidates")
    return (
        select(both.c.rate, both.c.valid_on).order_by(both.c.valid_on.desc()).limit(1).lateral("fx")
    )


async def get_rate(session: AsyncSession, rate_id: uuid.UUID) -> FxRate:
    row = await session.get(FxRate, rate_id)
    if row is None:
        raise NotFound(f"FX rate {rate_id} was not found.")
    return row


async def find_rate(session: AsyncSession, base: str, quote: str, valid_on: Any) -> FxRate | None:
    stmt = select(FxRate).where(
        FxRate.base == base, FxRate.quote == quote, FxRate.valid_on == valid_on
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def rate_page(
    session: AsyncSession, filters: FxRateFilters
) -> tuple[list[FxRate], str | None]:
    conditions: list[Any] = []
    if filters.base is not None:
        conditions.append(FxRate.base == filters.base)
    if filters.quote is not None:
        conditions.append(FxRate.quote == filters.quote)
    if filters.valid_from is not None:
        conditions.append(FxRate.valid_on >= filters.valid_from)
    if filters.valid_to is not None:
        conditions.append(FxRate.valid_on <= filters.valid_to)
    stmt = keyset(select(FxRate).where(*conditions), FxRate.created_at, FxRate.id, filters)
    return page_of((await session.execute(stmt)).scalars().all(), filters.limit)
