"""SQL for quotas and attainment.

Attainment is one statement for any set of quotas (one quota, or a team's): sales are
first summed per (quota, currency, local date), then each group is priced with the
latest FX rate on or before that date, so a million sales cost a few thousand rate
look-ups, not a million.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol
from typing import cast as typing_cast

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    DateTime,
    Integer,
    Select,
    String,
    Subquery,
    Uuid,
    and_,
    bindparam,
    case,
    cast,
    func,
    literal,
    null,
    or_,
    select,
    true,
    tuple_,
)
from sqlalchemy.ext.asyncio import AsyncSession

from app.assignments.scope import manager_scope, managers_visible
from app.core.auth import Principal
from app.core.errors import NotFound
from app.core.pagination import PageQuery, decode_cursor, encode_cursor, keyset, page_of
from app.interactions.models import Interaction
from app.managers.models import Manager
from app.quotas.models import Metric, Quota
from app.quotas.schemas import QuotaFilters
from app.sales.models import Sale
from app.sales.repository import local_date, rate_lookup


def visible(principal: Principal) -> Select[Quota]:
    """Quotas of managers in the caller's scope (``app.assignments.scope``)."""
    return select(Quota).where(managers_visible(principal, Quota.manager_id))


async def get(session: AsyncSession, principal: Principal, quota_id: uuid.UUID) -> Quota:
    row = (
        await session.execute(visible(principal).where(Quota.id == quota_id))
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(f"Quota {quota_id} was not found.")
    return row


async def list_page(
    session: AsyncSession, principal: Principal, filters: QuotaFilters
) -> tuple[list[Quota], str | None]:
    conditions: list[Any] = []
    if filters.manager_id is not None:
        conditions.append(Quota.manager_id == filters.manager_id)
    if filters.metric is not None:
        conditions.append(Quota.metric == filters.metric.value)
    if filters.active_at is not None:
        conditions.append(Quota.period.contains(filters.active_at))
    stmt = keyset(visible(principal).where(*conditions), Quota.created_at, Quota.id, filters)
    return page_of((await session.execute(stmt)).scalars().all(), filters.limit)


async def overlapping(
    session: AsyncSession,
    manager_id: uuid.UUID,
    metric: str,
    start: datetime,
    end: datetime,
    exclude_id: uuid.UUID | None = None,
) -> Quota | None:
    stmt = select(Quota).where(
        Quota.manager_id == manager_id,
        Quota.metric == metric,
        Quota.period_start < end,
        Quota.period_end > start,
    )
    if exclude_id is not None:
        stmt = stmt.where(Quota.id != exclude_id)
    return (await session.execute(stmt.limit(1))).scalar_one_or_none()


def achievement_statement(
    quotas: Subquery,
    quote: Any,
    as_of: datetime | ColumnElement[datetime],
    time_zone: str | BindParameter[str],
) -> Select[Any]:
    """Per quota in ``quotas``: achieved so far (money converted into ``quote``, or a
    count), the first sale group without an FX rate (``missing_rate``), and the FX rate
    for its money target into ``quote`` at the period's last local day (``target_rate``).

    ``quotas`` needs columns id, manager_id, metric, period_start, period_end, channel,
    target_currency; ``quote`` is a currency literal or a column of ``quotas``; ``as_of``
    and ``time_zone`` (an IANA name) are values or bound parameters.
    """
    q = quotas.c
    upto = func.least(q.period_end, as_of)
    # local_date() renders the zone as a bound value whether it is given one or a name.
    zone = cast_str(time_zone)
    on = local_date(Sale.closed_at, zone)
    daily = (
        select(
            q.id.label("quota_id"),
            Sale.currency.label("currency"),
            on.label("on"),
            cast(quote, String).label("quote"),
            func.sum(Sale.amount).label("amount"),
        )
        .select_from(quotas)
        .join(
            Sale,
            and_(
                Sale.credited_manager_id == q.manager_id,
                Sale.closed_at >= q.period_start,
                Sale.closed_at < upto,
            ),
        )
        .where(q.metric == Metric.sales_amount.value)
        .group_by(q.id, Sale.currency, on, quote)
        .subquery("daily")
    )
    fx = rate_lookup(daily.c.currency, daily.c.quote, daily.c.on)
    same = daily.c.currency == daily.c.quote
    priced = (
        select(
            daily.c.quota_id,
            func.sum(daily.c.amount * case((same, literal(Decimal(1))), else_=fx.c.rate)).label(
                "achieved"
            ),
            func.min(
                case(
                    (
                        and_(~same, fx.c.rate.is_(None)),
                        daily.c.currency
                        + "/"
                        + daily.c.quote
                        + " on or before "
                        + cast(daily.c.on, String),
                    ),
                )
            ).label("missing_rate"),
        )
        .select_from(daily)
        .outerjoin(fx, true())
        .group_by(daily.c.quota_id)
        .subquery("priced")
    )
    counted = (
        select(q.id.label("quota_id"), func.count(Interaction.id).label("achieved"))
        .select_from(quotas)
        .join(
            Interaction,
            and_(
                Interaction.manager_id == q.manager_id,
                Interaction.occurred_at >= q.period_start,
                Interaction.occurred_at < upto,
                or_(q.channel.is_(None), Interaction.channel == q.channel),
            ),
        )
        .where(q.metric == Metric.interaction_count.value)
        .group_by(q.id)
        .subquery("counted")
    )
    target_on = local_date(q.period_end - func.make_interval(0, 0, 0, 0, 0, 0, 1), zone)
    target_fx = rate_lookup(q.target_currency, cast(quote, String), target_on)
    return (
        select(
            quotas,
            func.coalesce(priced.c.achieved, cast(counted.c.achieved, Integer), 0).label(
                "achieved"
            ),
            priced.c.missing_rate,
            case(
                (q.target_currency.is_(None), null()),
                (q.target_currency == cast(quote, String), literal(Decimal(1))),
                else_=target_fx.c.rate,
            ).label("target_rate"),
        )
        .select_from(quotas)
        .outerjoin(priced, priced.c.quota_id == q.id)
        .outerjoin(counted, counted.c.quota_id == q.id)
        .outerjoin(target_fx, true())
    )


def quota_columns() -> list[Any]:
    return [
        Quota.id,
        Quota.manager_id,
        Quota.metric,
        Quota.period_start,
        Quota.period_end,
        Quota.channel,
        Quota.target_amount,
        Quota.target_currency,
        Quota.target_count,
    ]


def cast_str(value: str | BindParameter[str]) -> str:
    """``value`` typed as the ``str`` that helpers such as ``local_date`` declare; they
    only embed it in SQL, where a bound parameter works as well as a value."""
    return typing_cast(str, value)


class QuotaKey(Protocol):
    """What a page of counted records needs of a quota (a ``Quota`` or an achievement row)."""

    @property
    def manager_id(self) -> uuid.UUID: ...

    @property
    def metric(self) -> str: ...

    @property
    def period_start(self) -> datetime: ...

    @property
    def period_end(self) -> datetime: ...

    @property
    def target_currency(self) -> str | None: ...

    @property
    def channel(self) -> str | None: ...


_AS_OF = bindparam("as_of", type_=DateTime(timezone=True))
_TIME_ZONE = bindparam("time_zone", type_=String)


def _achievement_of_one(scope: Select[Any] | None) -> Select[Any]:
    quotas = select(*quota_columns()).where(Quota.id == bindparam("quota_id"))
    if scope is not None:
        quotas = quotas.where(Quota.manager_id.in_(scope))
    one = quotas.subquery("quotas")
    return achievement_statement(one, one.c.target_currency, _AS_OF, _TIME_ZONE)


# For unrestricted callers, built once: the statement is large, and building it and its
# cache key per request cost more than running it. Parameters: quota_id, as_of, time_zone.
_ACHIEVEMENT_OF_ONE = _achievement_of_one(None)


async def achievement_of(
    session: AsyncSession,
    principal: Principal,
    quota_id: uuid.UUID,
    as_of: datetime,
    time_zone: str,
) -> Any:
    """The :func:`achievement_statement` row of one quota in its own currency, with every
    column of :func:`quota_columns` (one statement, which also checks the caller's scope).

    Raises:
        NotFound: no such quota, or not in the caller's scope.
    """
    scope = manager_scope(principal)
    stmt = _ACHIEVEMENT_OF_ONE if scope is None else _achievement_of_one(scope)
    params = {"quota_id": quota_id, "as_of": as_of, "time_zone": time_zone}
    row = (await session.execute(stmt, params)).one_or_none()
    if row is None:
        raise NotFound(f"Quota {quota_id} was not found.")
    return row


async def team_achievements(
    session: AsyncSession,
    manager_id: uuid.UUID,
    start: datetime,
    end: datetime,
    as_of: datetime,
    currency: str,
    time_zone: str,
    principal: Principal | None = None,
) -> list[Any]:
    """Every quota inside ``[start, end)`` of the manager and everyone reporting to them
    (recursively), with its achievement in ``currency`` and the member's depth."""
    team = (
        select(Manager.id.label("id"), literal(0).label("depth"))
        .where(Manager.id == manager_id)
        .cte("team", recursive=True)
    )
    team = team.union(
        select(Manager.id, team.c.depth + 1).join(team, Manager.reports_to_id == team.c.id)
    )
    quotas = (
        select(*quota_columns(), team.c.depth)
        .join(team, team.c.id == Quota.manager_id)
        .where(Quota.period_start >= start, Quota.period_end <= end)
        .where(managers_visible(principal, Quota.manager_id) if principal else literal(True))
        .subquery("quotas")
    )
    stmt = achievement_statement(quotas, literal(currency), as_of, time_zone)
    stmt = stmt.order_by(quotas.c.depth, quotas.c.manager_id, quotas.c.metric)
    return list((await session.execute(stmt)).all())


# Pages of counted records by (metric, channel filter, after a cursor), built once each.
# Parameters: manager_id, period_start, upto, limit; currency and time_zone (sales);
# channel; c_at and c_id after a cursor.
_counted: dict[tuple[str, bool, bool], Select[Any]] = {}


def _counted_statement(metric: str, by_channel: bool, after: bool) -> Select[Any]:
    key = (metric, by_channel, after)
    found = _counted.get(key)
    if found is not None:
        return found
    manager_id = bindparam("manager_id", type_=Uuid)
    start = bindparam("period_start", type_=DateTime(timezone=True))
    upto = bindparam("upto", type_=DateTime(timezone=True))
    stmt: Any  # a select of three or six columns
    if metric == Metric.sales_amount.value:
        fx = rate_lookup(
            Sale.currency,
            bindparam("quote", type_=String),
            local_date(Sale.closed_at, cast_str(bindparam("time_zone", type_=String))),
        )
        at, row_id = Sale.closed_at, Sale.id
        stmt = (
            select(
                Sale.id.label("id"),
                Sale.closed_at.label("at"),
                Sale.amount,
                Sale.currency,
                case(
                    (Sale.currency == bindparam("currency", type_=String), literal(Decimal(1))),
                    else_=fx.c.rate,
                ).label("rate"),
                fx.c.valid_on.label("rate_valid_on"),
            )
            .outerjoin(fx, true())
            .where(
                Sale.credited_manager_id == manager_id,
                Sale.closed_at >= start,
                Sale.closed_at < upto,
            )
        )
    else:
        at, row_id = Interaction.occurred_at, Interaction.id
        stmt = select(
            Interaction.id.label("id"),
            Interaction.occurred_at.label("at"),
            Interaction.channel,
        ).where(
            Interaction.manager_id == manager_id,
            Interaction.occurred_at >= start,
            Interaction.occurred_at < upto,
        )
        if by_channel:
            stmt = stmt.where(Interaction.channel == bindparam("channel", type_=String))
    if after:
        c_at = bindparam("c_at", type_=DateTime(timezone=True))
        stmt = stmt.where(tuple_(at, row_id) > tuple_(c_at, bindparam("c_id", type_=Uuid)))
    _counted[key] = stmt.order_by(at, row_id).limit(bindparam("limit", type_=Integer))
    return _counted[key]


async def counted_records(
    session: AsyncSession, quota: QuotaKey, as_of: datetime, time_zone: str, page: PageQuery
) -> tuple[list[Any], str | None]:
    """One page of the sales (with the FX rate applied) or interactions that counted,
    ordered by ``(at, id)``."""
    sales = quota.metric == Metric.sales_amount.value
    params: dict[str, Any] = {
        "manager_id": quota.manager_id,
        "period_start": quota.period_start,
        "upto": min(quota.period_end, as_of),
        "limit": page.limit + 1,
    }
    if sales:
        params.update(currency=quota.target_currency, quote=quota.target_currency)
        params["time_zone"] = time_zone
    by_channel = not sales and bool(quota.channel)
    if by_channel:
        params["channel"] = quota.channel
    if page.cursor:
        params["c_at"], params["c_id"] = decode_cursor(page.cursor)
    stmt = _counted_statement(quota.metric, by_channel, bool(page.cursor))
    rows = list((await session.execute(stmt, params)).all())
    items = rows[: page.limit]
    cursor = encode_cursor(items[-1].at, items[-1].id) if len(rows) > page.limit else None
    return items, cursor
