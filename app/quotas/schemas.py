"""Request and response bodies of quotas and attainment."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Self

from pydantic import Field, model_validator

from app.core.money import CurrencyCode, Money
from app.core.pagination import Page, PageQuery
from app.core.schemas import (
    AuditedRead,
    Instant,
    InstantOrDay,
    Integer,
    ReadModel,
    StrictModel,
)
from app.interactions.models import Channel
from app.quotas.models import Metric

PeriodLabel = str


class QuotaCreate(StrictModel):
    manager_id: uuid.UUID
    metric: Metric
    period: str | None = Field(
        default=None,
        max_length=20,
        examples=["FY2027-Q1"],
        description="FY2027, FY2027-Q1, FY2027-M01 or 2026-04 (organisation calendar); or "
        "give period_start and period_end.",
    )
    period_start: Instant | None = None
    period_end: Instant | None = None
    target: Money | None = Field(default=None, description="For sales_amount.")
    target_count: Integer | None = Field(default=None, ge=1, description="For interaction_count.")
    channel: Channel | None = Field(
        default=None, description="interaction_count only: count this channel only."
    )

    @model_validator(mode="after")
    def _shape(self) -> Self:
        if (self.period is None) == (self.period_start is None or self.period_end is None):
            raise ValueError("give either period or both period_start and period_end")
        if self.period is not None and (self.period_start or self.period_end):
            raise ValueError("give either period or period_start/period_end, not both")
        if self.period_start and self.period_end and self.period_end <= self.period_start:
            raise ValueError("period_end must be after period_start")
        if self.metric == Metric.sales_amount:
            if self.target is None or self.target_count is not None or self.channel:
                raise ValueError("sales_amount needs target (money) and no target_count/channel")
            if self.target.value <= 0:
                raise ValueError("target must be positive")
        elif self.target_count is None or self.target is not None:
            raise ValueError("interaction_count needs target_count and no target")
        return self


class QuotaUpdate(StrictModel):
    """Only the target can change; a different period is a different quota."""

    target: Money | None = None
    target_count: Integer | None = Field(default=None, ge=1)


class QuotaRead(AuditedRead):
    manager_id: uuid.UUID
    metric: Metric
    period: str | None = Field(description="The label it was set for, if any.")
    period_start: datetime
    period_end: datetime
    target: Money | None
    target_count: int | None
    channel: Channel | None


class QuotaPage(Page[QuotaRead]):
    """A page of quotas."""


class QuotaFilters(PageQuery):
    manager_id: uuid.UUID | None = None
    metric: Metric | None = None
    active_at: Instant | None = Field(default=None, description="Period contains it.")


class AttainmentStatus(StrEnum):
    on_track = "on_track"
    behind_pace = "behind_pace"
    met = "met"
    missed = "missed"


class AttainmentQuery(PageQuery):
    as_of: InstantOrDay | None = Field(
        default=None, description="Default now; a date means 00:00 in the organisation's zone."
    )


class CountedRecord(ReadModel):
    """A sale or interaction that counted toward the quota."""

    kind: str = Field(description="sale or interaction")
    id: uuid.UUID
    at: datetime
    amount: Money | None = Field(default=None, description="Sale amount as recorded.")
    rate: str | None = Field(default=None, description="FX rate applied (1 for same currency).")
    rate_valid_on: date | None = None
    converted: str | None = Field(
        default=None, description="Unrounded amount in the quota's currency."
    )
    channel: Channel | None = None


class Attainment(ReadModel):
    """Progress of one quota at ``as_of``. Quantities are decimal strings in ``unit`` (the
    quota's currency, rounded half-even to its minor unit, or ``interactions``).

    Formulas: ratio = achieved ÷ target; elapsed_share = (as_of − start) ÷ (end − start),
    clamped to [0, 1]; expected_by_now = target × elapsed_share (pace); projected =
    achieved ÷ elapsed_share. Status: after the period met/missed; during it met when
    achieved ≥ target, else on_track when achieved ≥ expected_by_now, else behind_pace.
    """

    quota_id: uuid.UUID
    manager_id: uuid.UUID
    metric: Metric
    unit: str
    period_start: datetime
    period_end: datetime
    as_of: datetime
    achieved: str
    target: str
    ratio: str = Field(description="achieved ÷ target, 4 decimals")
    elapsed_share: str
    expected_by_now: str
    projected: str
    status: AttainmentStatus
    records: list[CountedRecord]
    next_cursor: str | None = Field(description="Cursor for the next page of records.")


class RollupQuery(StrictModel):
    period: str = Field(max_length=20, examples=["FY2027-Q1"])
    as_of: InstantOrDay | None = None
    currency: CurrencyCode | None = Field(
        default=None, description="Currency of sales figures; default ORG__CURRENCY."
    )


class MemberAttainment(ReadModel):
    quota_id: uuid.UUID
    manager_id: uuid.UUID
    depth: int = Field(description="0 for the lead, 1 for direct reports, ...")
    metric: Metric
    achieved: str
    target: str
    ratio: str


class MetricRollup(ReadModel):
    metric: Metric
    unit: str
    achieved: str
    target: str
    ratio: str
    quotas: int


class TeamAttainment(ReadModel):
    """A lead's team (recursively) for one period: totals per metric and each quota.
    Sales in other currencies are converted at the sale's local-date rate; money targets
    at the rate of the period's last day."""

    manager_id: uuid.UUID
    period: str
    period_start: datetime
    period_end: datetime
    as_of: datetime
    currency: str
    totals: list[MetricRollup]
    members: list[MemberAttainment]
