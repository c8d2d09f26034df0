"""Client accounts."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import (
    CHAR,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Numeric,
    String,
    func,
    literal,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, ResourceMixin
from app.core.money import Money


class Segment(StrEnum):
    strategic = "strategic"
    key = "key"
    enterprise = "enterprise"
    mid_market = "mid_market"
    small = "small"


class LifecycleStage(StrEnum):
    prospect = "prospect"
    onboarding = "onboarding"
    active = "active"
    churned = "churned"


class Client(ResourceMixin, Base):
    __tablename__ = "clients"

    name: Mapped[str] = mapped_column(String(200), nullable=False)
    legal_name: Mapped[str | None] = mapped_column(String(200))
    external_ref: Mapped[str | None] = mapped_column(String(100), unique=True)
    industry: Mapped[str | None] = mapped_column(String(100))
    segment: Mapped[str] = mapped_column(String(20), nullable=False)
    lifecycle_stage: Mapped[str] = mapped_column(String(20), nullable=False)
    parent_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("clients.id", ondelete="RESTRICT")
    )
    country: Mapped[str] = mapped_column(CHAR(2), nullable=False)
    currency: Mapped[str] = mapped_column(CHAR(3), nullable=False)
    time_zone: Mapped[str | None] = mapped_column(String(64))
    renewal_date: Mapped[date | None] = mapped_column(Date)
    annual_value_amount: Mapped[Decimal | None] = mapped_column(Numeric(19, 4))
    annual_value_currency: Mapped[str | None] = mapped_column(CHAR(3))
    archived_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_clients_parent_id", "parent_id"),
        Index("ix_clients_created_at_id", "created_at", "id"),
        Index("ix_clients_updated_at", "updated_at"),
        Index("ix_clients_segment", "segment"),
        Index("ix_clients_country", "country"),
        Index(
            "ix_clients_search",
            func.search_fold(
                name
                + literal(" ")
                + func.coalesce(legal_name, "")
                + literal(" ")
                + func.coalesce(external_ref, "")
            ),
            postgresql_using="gin",
            postgresql_ops={"search_fold": "gin_trgm_ops"},
        ),
        CheckConstraint(
            "segment IN ('strategic', 'key', 'enterprise', 'mid_market', 'small')",
            name="segment",
        ),
        CheckConstraint(
            "lifecycle_stage IN ('prospect', 'onboarding', 'active', 'churned')",
            name="lifecycle_stage",
        ),
        CheckConstraint("country ~ '^[A-Z]{2}$'", name="country_iso"),
        CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_iso"),
        CheckConstraint("parent_id IS NULL OR parent_id <> id", name="not_own_parent"),
        CheckConstraint("btrim(name) <> ''", name="name_not_blank"),
        CheckConstraint(
            "(annual_value_amount IS NULL) = (annual_value_currency IS NULL)",
            name="annual_value_complete",
        ),
    )

    @property
    def annual_value(self) -> Money | None:
        if self.annual_value_amount is None or self.annual_value_currency is None:
            return None
        return Money.of(self.annual_value_amount, self.annual_value_currency)

    @property
    def archived(self) -> bool:
        return self.archived_at is not None
