"""Quotas and attainment: the arithmetic on top of the set-based achievement query.

All sums are exact decimals; rounding (half-even, to the quota currency's minor unit)
happens once, at the end.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.assignments.scope import team_ids
from app.config import Settings
from app.core.auth import Principal, Role
from app.core.crud import apply_changes, changes_of, delete_row, new_row
from app.core.errors import Conflict, Forbidden, Unprocessable, register_constraint
from app.core.money import Money, currency_decimals
from app.core.pagination import PageQuery
from app.core.periods import FiscalCalendar
from app.managers.models import Manager
from app.quotas import repository
from app.quotas.models import Metric, Quota
from app.quotas.schemas import (
    Attainment,
    AttainmentStatus,
    CountedRecord,
    MemberAttainment,
    MetricRollup,
    QuotaCreate,
    QuotaRead,
    QuotaUpdate,
    TeamAttainment,
)

register_constraint(
    "ex_quotas_no_overlap",
    409,
    "The manager already has a quota for this metric overlapping this period.",
)
RATIO_PLACES = Decimal("0.0001")
COUNT_PLACES = Decimal("0.01")


def calendar(settings: Settings) -> FiscalCalendar:
    return FiscalCalendar(settings.org.time_zone, settings.org.fiscal_year_start_month)


def to_read(row: Quota) -> QuotaRead:
    target = (
        Money.of(row.target_amount, row.target_currency)
        if row.target_amount is not None and row.target_currency is not None
        else None
    )
    fields = {
        name: getattr(row, name)
        for name in QuotaRead.model_fields
        if name not in ("period", "target")
    }
    return QuotaRead(**fields, period=row.period_label, target=target)


def _overlap_conflict(existing: Quota) -> Conflict:
    return Conflict(
        f"Manager {existing.manager_id} already has a {existing.metric} quota {existing.id} "
        f"for {existing.period_start.isoformat()} to {existing.period_end.isoformat()}.",
        extra={"conflicting_quota_id": str(existing.id)},
    )


async def _check_quota_setter(
    session: AsyncSession, principal: Principal, manager_id: uuid.UUID
) -> None:
    """Admins set anyone's quota; a sales_manager only those of people reporting to them
    (recursively), not their own. Raises Unprocessable (unknown or out of scope)."""
    if await session.get(Manager, manager_id) is None:
        raise Unprocessable.field("body.manager_id", f"Manager {manager_id} does not exist.")
    if Role.admin in principal.roles:
        return
    lead = principal.manager_id
    in_team = (
        lead is not None
        and manager_id != lead
        and (
            await session.execute(
                select(Manager.id).where(Manager.id == manager_id, Manager.id.in_(team_ids(lead)))
            )
        ).scalar_one_or_none()
        is not None
    )
    if not in_team:
        raise Forbidden("A sales_manager sets quotas only for the managers reporting to them.")


async def create_quota(
    session: AsyncSession, principal: Principal, settings: Settings, data: QuotaCreate
) -> Quota:
    """Set a quota. Raises Unprocessable (unknown manager or period), Conflict (overlap)."""
    await _check_quota_setter(session, principal, data.manager_id)
    if data.period is not None:
        try:
            period = calendar(settings).resolve(data.period)
        except ValueError as exc:
            raise Unprocessable.field("body.period", str(exc)) from exc
        start, end, label = period.start, period.end, period.label
    else:
        assert data.period_start is not None
        assert data.period_end is not None
        start, end, label = data.period_start, data.period_end, None
    existing = await repository.overlapping(session, data.manager_id, data.metric, start, end)
    if existing is not None:
        raise _overlap_conflict(existing)
    values: dict[str, Any] = {
        "manager_id": data.manager_id,
        "metric": data.metric.value,
        "period_label": label,
        "period_start": start,
        "period_end": end,
        "target_amount": data.target.value if data.target else None,
        "target_currency": data.target.currency if data.target else None,
        "target_count": data.target_count,
        "channel": data.channel.value if data.channel else None,
    }
    row = new_row(Quota, values, principal)
    session.add(row)
    await session.flush()
    await session.refresh(row)
    return row


async def update_quota(
    session: AsyncSession,
    principal: Principal,
    quota_id: uuid.UUID,
    data: QuotaUpdate,
    if_match: str | None,
) -> Quota:
    """Change a quota's target. Raises NotFound, Forbidden, PreconditionFailed,
    Unprocessable."""
    row = await repository.get(session, principal, quota_id)
    await _check_quota_setter(session, principal, row.manager_id)
    changes = changes_of(data)
    values: dict[str, Any] = {}
    if row.metric == Metric.sales_amount.value:
        if "target_count" in changes:
            raise Unprocessable.field("body.target_count", "A sales_amount quota has a target.")
        if "target" in changes:
            if data.target is None or data.target.value <= 0:
                raise Unprocessable.field("body.target", "target must be a positive amount.")
            values = {"target_amount": data.target.value, "target_currency": data.target.currency}
    else:
        if "target" in changes:
            raise Unprocessable.field("body.target", "An interaction_count quota has target_count.")
        if "target_count" in changes:
            if data.target_count is None:
                raise Unprocessable.field("body.target_count", "target_count cannot be null.")
            values = {"target_count": data.target_count}
    await apply_changes(session, row, values, principal, if_match)
    return row


async def delete_quota(
    session: AsyncSession, principal: Principal, quota_id: uuid.UUID, if_match: str | None
) -> None:
    row = await repository.get(session, principal, quota_id)
    await _check_quota_setter(session, principal, row.manager_id)
    await delete_row(session, row, if_match, "quota")


def _round(value: Decimal, unit: str | None) -> Decimal:
    if unit is None:
        return value.quantize(COUNT_PLACES, rounding=ROUND_HALF_EVEN)
    places = Decimal(1).scaleb(-currency_decimals(unit))
    return value.quantize(places, rounding=ROUND_HALF_EVEN)


def _text(value: Decimal) -> str:
    return format(value, "f")


def _ratio(achieved: Decimal, target: Decimal) -> Decimal:
    if target == 0:
        return Decimal(0)
    return (achieved / target).quantize(RATIO_PLACES, rounding=ROUND_HALF_EVEN)


def _missing_rate(row: Any) -> None:
    if row.missing_rate:
        raise Unprocessable(
            f"No FX rate {row.missing_rate}: publish one in /v1/fx-rates.",
            extra={"missing_rate": row.missing_rate},
        )


@dataclass(frozen=True, slots=True)
class QuotaFigures:
    """One quota's attainment figures as decimal strings in ``unit`` (see
    :class:`~app.quotas.schemas.Attainment` for the formulas)."""

    unit: str
    achieved: str
    target: str
    ratio: str
    elapsed_share: str
    expected_by_now: str
    projected: str
    status: AttainmentStatus


def quota_figures(row: Any, as_of: datetime) -> QuotaFigures:
    """Figures of one row of :func:`repository.achievement_statement` priced in the quota's
    own currency (needs its quota columns, ``achieved`` and ``missing_rate``) at ``as_of``.

    Money is rounded half-even to the currency's minor unit; counts are exact. Raises
    Unprocessable when a sale's currency has no FX rate (never a silent 1.0)."""
    _missing_rate(row)
    unit = row.target_currency
    achieved = Decimal(row.achieved)
    target = (row.target_amount if unit else None) or Decimal(row.target_count or 0)
    span = (row.period_end - row.period_start).total_seconds()
    elapsed = min(max(as_of, row.period_start), row.period_end) - row.period_start
    share = Decimal(elapsed.total_seconds()) / Decimal(span)
    expected = target * share
    projected = achieved / share if share > 0 else Decimal(0)
    if as_of >= row.period_end:
        status = AttainmentStatus.met if achieved >= target else AttainmentStatus.missed
    elif achieved >= target:
        status = AttainmentStatus.met
    elif achieved >= expected:
        status = AttainmentStatus.on_track
    else:
        status = AttainmentStatus.behind_pace
    return QuotaFigures(
        unit=unit or "interactions",
        achieved=_text(_round(achieved, unit) if unit else achieved),
        target=_text(_round(target, unit) if unit else target),
        ratio=_text(_ratio(achieved, target)),
        elapsed_share=_text(share.quantize(RATIO_PLACES, rounding=ROUND_HALF_EVEN)),
        expected_by_now=_text(_round(expected, unit)),
        projected=_text(_round(projected, unit)),
        status=status,
    )


async def attainment(
    session: AsyncSession,
    principal: Principal,
    settings: Settings,
    quota_id: uuid.UUID,
    as_of: datetime,
    page: PageQuery,
) -> Attainment:
    """Attainment of one quota at ``as_of`` with one page of the records that counted.

    Raises NotFound; Unprocessable when a sale's currency has no rate into the quota's
    currency on or before its local date (never a silent 1.0)."""
    tz = settings.org.time_zone
    # One statement for the quota (scope checked) and its achievement.
    quota = await repository.achievement_of(session, principal, quota_id, as_of, tz)
    figures = quota_figures(quota, as_of)
    unit = quota.target_currency
    records, cursor = await repository.counted_records(session, quota, as_of, tz, page)
    counted = [
        CountedRecord(
            kind="sale" if unit else "interaction",
            id=r.id,
            at=r.at,
            amount=Money.of(r.amount, r.currency) if unit else None,
            rate=_text(r.rate.normalize()) if unit and r.rate is not None else None,
            rate_valid_on=r.rate_valid_on if unit else None,
            converted=_text(r.amount * r.rate) if unit and r.rate is not None else None,
            channel=None if unit else r.channel,
        )
        for r in records
    ]
    return Attainment(
        quota_id=quota.id,
        manager_id=quota.manager_id,
        metric=Metric(quota.metric),
        unit=unit or "interactions",
        period_start=quota.period_start,
        period_end=quota.period_end,
        as_of=as_of,
        achieved=figures.achieved,
        target=figures.target,
        ratio=figures.ratio,
        elapsed_share=figures.elapsed_share,
        expected_by_now=figures.expected_by_now,
        projected=figures.projected,
        status=figures.status,
        records=counted,
        next_cursor=cursor,
    )


async def team_attainment(
    session: AsyncSession,
    settings: Settings,
    manager_id: uuid.UUID,
    period_label: str,
    as_of: datetime,
    currency: str,
    principal: Principal | None = None,
) -> TeamAttainment:
    """Roll-up of every quota inside the period of the manager and all reports
    (recursively). Raises Unprocessable for an unknown period or a missing FX rate."""
    try:
        period = calendar(settings).resolve(period_label)
    except ValueError as exc:
        raise Unprocessable.field("query.period", str(exc)) from exc
    rows = await repository.team_achievements(
        session,
        manager_id,
        period.start,
        period.end,
        as_of,
        currency,
        settings.org.time_zone,
        principal=principal,
    )
    members: list[MemberAttainment] = []
    totals: dict[Metric, tuple[Decimal, Decimal, int]] = {}
    for row in rows:
        _missing_rate(row)
        metric = Metric(row.metric)
        achieved = Decimal(row.achieved)
        if metric == Metric.sales_amount:
            if row.target_rate is None:
                raise Unprocessable(
                    f"No FX rate {row.target_currency}/{currency} for the period's last day.",
                    extra={"missing_rate": f"{row.target_currency}/{currency}"},
                )
            target = Decimal(row.target_amount) * Decimal(row.target_rate)
        else:
            target = Decimal(row.target_count)
        unit = currency if metric == Metric.sales_amount else None
        members.append(
            MemberAttainment(
                quota_id=row.id,
                manager_id=row.manager_id,
                depth=row.depth,
                metric=metric,
                achieved=_text(_round(achieved, unit) if unit else achieved),
                target=_text(_round(target, unit) if unit else target),
                ratio=_text(_ratio(achieved, target)),
            )
        )
        a, t, n = totals.get(metric, (Decimal(0), Decimal(0), 0))
        totals[metric] = (a + achieved, t + target, n + 1)
    return TeamAttainment(
        manager_id=manager_id,
        period=period.label,
        period_start=period.start,
        period_end=period.end,
        as_of=as_of,
        currency=currency,
        totals=[
            MetricRollup(
                metric=metric,
                unit=currency if metric == Metric.sales_amount else "interactions",
                achieved=_text(_round(a, currency) if metric == Metric.sales_amount else a),
                target=_text(_round(t, currency) if metric == Metric.sales_amount else t),
                ratio=_text(_ratio(a, t)),
                quotas=n,
            )
            for metric, (a, t, n) in sorted(totals.items())
        ],
        members=members,
    )
