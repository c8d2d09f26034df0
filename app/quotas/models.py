"""Quotas: a target for one manager, one metric and one period."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    CHAR,
    CheckConstraint,
    Computed,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
)
from sqlalchemy.dialects.postgresql import TSTZRANGE, ExcludeConstraint
from sqlalchemy.orm import Mapped, deferred, mapped_column

from app.core.db import Base, ResourceMixin
from app.interactions.models import CHANNELS_SQL


class Metric(StrEnum):
    sales_amount = "sales_amount"
    interaction_count = "interaction_count"


class Quota(ResourceMixin, Base):
    """``[period_start, period_end)``; a money target (``sales_amount``) or a count target
    (``interaction_count``, optionally of one channel). No two quotas of one manager and
    metric overlap (exclusion constraint)."""

    __tablename__ = "quotas"

    manager_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("managers.id", ondelete="RESTRICT"), nullable=False
    )
    metric: Mapped[str] = mapped_column(String(20), nullable=False)
    period_label: Mapped[str | None] = mapped_column(String(20))
    period_start: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    period_end: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    target_amount: Mapped[Decimal | None] = mapped_column(Numeric(19, 4))
    target_currency: Mapped[str | None] = mapped_column(CHAR(3))
    target_count: Mapped[int | None] = mapped_column(Integer)
    channel: Mapped[str | None] = mapped_column(String(20))
    external_ref: Mapped[str | None] = mapped_column(String(100), unique=True)
    period: Mapped[Any] = deferred(
        mapped_column(
            TSTZRANGE,
            Computed("tstzrange(period_start, period_end, '[)')", persisted=True),
        )
    )

    __table_args__ = (
        CheckConstraint("metric IN ('sales_amount', 'interaction_count')", name="metric"),
        CheckConstraint("period_end > period_start", name="period_order"),
        CheckConstraint(
            "(metric = 'sales_amount' AND target_amount > 0 AND target_currency IS NOT NULL "
            "AND target_count IS NULL AND channel IS NULL) OR "
            "(metric = 'interaction_count' AND target_count > 0 AND target_amount IS NULL "
            "AND target_currency IS NULL)",
            name="target_fits_metric",
        ),
        CheckConstraint(f"channel IS NULL OR channel IN ({CHANNELS_SQL})", name="channel"),
        ExcludeConstraint(
            ("manager_id", "="),
            ("metric", "="),
            ("period", "&&"),
            using="gist",
            name="ex_quotas_no_overlap",
        ),
        Index("ix_quotas_period_start", "period_start"),
        Index("ix_quotas_created_at_id", "created_at", "id"),
    )
