"""Request and response bodies of ``/v1/clients``."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from pydantic import Field

from app.clients.models import LifecycleStage, Segment
from app.core.money import CountryCode, CurrencyCode, Money
from app.core.pagination import Page, PageQuery
from app.core.schemas import (
    AuditedRead,
    Day,
    ExternalRef,
    Instant,
    Name,
    SearchText,
    StrictModel,
    TimeZoneName,
)


class ClientCreate(StrictModel):
    name: Name = Field(examples=["Ügyfél Kft."])
    legal_name: Name | None = None
    external_ref: ExternalRef | None = None
    industry: Name | None = None
    segment: Segment
    lifecycle_stage: LifecycleStage = LifecycleStage.prospect
    parent_id: uuid.UUID | None = Field(default=None, description="Parent account (no cycles).")
    country: CountryCode
    currency: CurrencyCode = Field(description="The client's billing currency (ISO 4217).")
    time_zone: TimeZoneName | None = None
    renewal_date: Day | None = None
    annual_value: Money | None = None


class ClientUpdate(StrictModel):
    name: Name | None = None
    legal_name: Name | None = None
    external_ref: ExternalRef | None = None
    industry: Name | None = None
    segment: Segment | None = None
    lifecycle_stage: LifecycleStage | None = None
    parent_id: uuid.UUID | None = None
    country: CountryCode | None = None
    currency: CurrencyCode | None = None
    time_zone: TimeZoneName | None = None
    renewal_date: Day | None = None
    annual_value: Money | None = None


class ClientRead(AuditedRead):
    name: str
    legal_name: str | None
    external_ref: str | None
    industry: str | None
    segment: Segment
    lifecycle_stage: LifecycleStage
    parent_id: uuid.UUID | None
    country: str
    currency: str
    time_zone: str | None
    renewal_date: date | None
    annual_value: Money | None
    archived: bool
    archived_at: datetime | None


class ClientFilters(PageQuery):
    """Filters of ``GET /v1/clients``; all combine with AND."""

    segment: Segment | None = None
    lifecycle_stage: LifecycleStage | None = None
    country: CountryCode | None = None
    parent_id: uuid.UUID | None = None
    updated_since: Instant | None = Field(
        default=None, description="Only clients changed at or after this instant."
    )
    q: SearchText | None = None
    include_archived: bool = Field(default=False, description="Also list archived clients.")


class ClientPage(Page[ClientRead]):
    """A page of clients."""
