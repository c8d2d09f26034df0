"""Request and response bodies of ``/v1/sales`` and ``/v1/fx-rates``."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated

from pydantic import Field, StringConstraints, field_serializer, model_validator

from app.core.money import CurrencyCode, Money
from app.core.pagination import Page, PageQuery
from app.core.schemas import AuditedRead, Day, ExternalRef, Instant, StrictModel
from app.sales.models import SaleKind

Product = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class SaleCreate(StrictModel):
    client_id: uuid.UUID
    amount: Money = Field(description="Negative for a credit note; a refund is never positive.")
    closed_at: Instant = Field(description="At most 5 minutes in the future.")
    kind: SaleKind
    product: Product | None = None
    external_ref: ExternalRef | None = None
    credited_manager_id: uuid.UUID | None = Field(
        default=None,
        description="Default: the manager responsible for the client at closed_at.",
    )


class SaleUpdate(StrictModel):
    amount: Money | None = None
    closed_at: Instant | None = None
    kind: SaleKind | None = None
    product: Product | None = None
    external_ref: ExternalRef | None = None
    credited_manager_id: uuid.UUID | None = None


class SaleRead(AuditedRead):
    client_id: uuid.UUID
    amount: Money
    closed_at: datetime
    kind: SaleKind
    product: str | None
    external_ref: str | None
    credited_manager_id: uuid.UUID


class SalePage(Page[SaleRead]):
    """A page of sales."""


class SaleFilters(PageQuery):
    """Filters of ``GET /v1/sales``; all combine with AND."""

    client_id: uuid.UUID | None = None
    credited_manager_id: uuid.UUID | None = None
    kind: SaleKind | None = None
    closed_from: Instant | None = Field(default=None, description="Inclusive.")
    closed_to: Instant | None = Field(default=None, description="Exclusive.")


RateString = Annotated[
    str,
    Field(
        pattern=r"^\d{1,14}(\.\d{1,10})?$",
        examples=["1.0845"],
        description="Decimal string: 1 base = rate quote.",
    ),
]


class FxRateCreate(StrictModel):
    base: CurrencyCode
    quote: CurrencyCode
    rate: RateString
    valid_on: Day = Field(description="Used for sales on this local date and after.")

    @model_validator(mode="after")
    def _sensible(self) -> FxRateCreate:
        if self.base == self.quote:
            raise ValueError("base and quote must differ")
        if Decimal(self.rate) <= 0:
            raise ValueError("rate must be positive")
        return self


class FxRateRead(AuditedRead):
    base: str
    quote: str
    rate: Decimal
    valid_on: date

    @field_serializer("rate")
    def _rate_string(self, value: Decimal) -> str:
        return format(value.normalize(), "f")


class FxRatePage(Page[FxRateRead]):
    """A page of FX rates."""


class FxRateFilters(PageQuery):
    base: CurrencyCode | None = None
    quote: CurrencyCode | None = None
    valid_from: Day | None = None
    valid_to: Day | None = None
