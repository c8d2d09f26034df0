"""Sales (closed business that counts toward quotas) and dated FX rates."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import CHAR, CheckConstraint, Date, DateTime, ForeignKey, Index, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, ResourceMixin
from app.core.money import Money


class SaleKind(StrEnum):
    new = "new"
    renewal = "renewal"
    upsell = "upsell"
    cross_sell = "cross_sell"
    refund = "refund"


class Sale(ResourceMixin, Base):
    """``amount`` in ``currency``; negative for a credit note (a refund is never positive)."""

    __tablename__ = "sales"

    client_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("clients.id", ondelete="RESTRICT"), nullable=False
    )
    amount: Mapped[Decimal] = mapped_column(Numeric(19, 4), nullable=False)
    currency: Mapped[str] = mapped_column(CHAR(3), nullable=False)
    closed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    product: Mapped[str | None] = mapped_column(String(200))
    external_ref: Mapped[str | None] = mapped_column(String(100), unique=True)
    credited_manager_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("managers.id", ondelete="RESTRICT"), nullable=False
    )

    __table_args__ = (
        CheckConstraint(
            "kind IN ('new', 'renewal', 'upsell', 'cross_sell', 'refund')", name="kind"
        ),
        CheckConstraint("kind <> 'refund' OR amount <= 0", name="refund_not_positive"),
        CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_iso"),
        Index(
            "ix_sales_credited_manager_id_closed_at",
            "credited_manager_id",
            "closed_at",
            postgresql_include=["amount", "currency"],
        ),
        Index("ix_sales_client_id_closed_at", "client_id", "closed_at"),
        Index("ix_sales_created_at_id", "created_at", "id"),
    )

    @property
    def money(self) -> Money:
        return Money.of(self.amount, self.currency)


class FxRate(ResourceMixin, Base):
    """1 ``base`` = ``rate`` ``quote``, from ``valid_on`` until the next published rate.
    A published rate is never changed, so past attainment cannot drift."""

    __tablename__ = "fx_rates"

    base: Mapped[str] = mapped_column(CHAR(3), nullable=False)
    quote: Mapped[str] = mapped_column(CHAR(3), nullable=False)
    rate: Mapped[Decimal] = mapped_column(Numeric(24, 10), nullable=False)
    valid_on: Mapped[date] = mapped_column(Date, nullable=False)

    __table_args__ = (
        CheckConstraint("rate > 0", name="rate_positive"),
        CheckConstraint("base <> quote", name="distinct_currencies"),
        Index("uq_fx_rates_base_quote_valid_on", "base", "quote", "valid_on", unique=True),
    )
