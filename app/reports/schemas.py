"""Query parameters and bodies of the read-only reports under ``/v1/reports``."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field

from app.clients.models import Segment
from app.complaints.models import Category, Severity, Status
from app.core.money import CurrencyCode
from app.core.pagination import Page, PageQuery
from app.core.schemas import InstantOrDay, ReadModel, StrictModel
from app.quotas.models import Metric
from app.quotas.schemas import AttainmentStatus

# --- Account status -------------------------------------------------------------------


class AccountStatusQuery(PageQuery):
    """Filters of ``GET /v1/reports/account-status``."""

    manager_id: uuid.UUID | None = Field(
        default=None,
        description="Only the clients this manager is assigned to now (primary, secondary "
        "or cover).",
    )
    include_team: bool = Field(
        default=False,
        description="With manager_id: also the clients of everyone reporting to them "
        "(recursively).",
    )


class AccountStatusRow(ReadModel):
    """One client's status now. ``health_score`` = max(0, 100 − Σ points of its open and
    acknowledged flags: critical 40, high 25, medium 10, low 5), as
    `GET /v1/clients/{id}/health`; ``open_flags`` counts its unresolved flags (open,
    acknowledged or snoozed); ``open_complaints`` those neither resolved nor closed."""

    client_id: uuid.UUID
    client_name: str
    segment: Segment
    country: str
    responsible_manager_id: uuid.UUID | None = Field(
        description="The active cover, else the primary; null when unassigned."
    )
    responsible_manager_name: str | None
    health_score: int = Field(ge=0, le=100)
    last_contact_at: datetime | None = Field(description="Latest interaction's occurred_at.")
    open_complaints: int
    open_flags: int


class AccountStatusPage(Page[AccountStatusRow]):
    """A page of the account status report, ordered like the client list."""


# --- Quota attainment ---------------------------------------------------------------


class QuotaAttainmentQuery(StrictModel):
    """Parameters of ``GET /v1/reports/quota-attainment``."""

    period: str = Field(
        max_length=20,
        examples=["FY2027-Q1"],
        description="FY2027, FY2027-Q1, FY2027-M01 or 2026-04 (organisation calendar); the "
        "quotas lying inside it are reported.",
    )
    manager_id: uuid.UUID | None = Field(
        default=None,
        description="A lead: only the quotas of this manager and everyone reporting to them "
        "(recursively). Default: every quota in the caller's scope.",
    )
    as_of: InstantOrDay | None = Field(
        default=None, description="Default now; a date means 00:00 in the organisation's zone."
    )
    currency: CurrencyCode | None = Field(
        default=None, description="Currency of the team roll-ups' sales; default ORG__CURRENCY."
    )


class QuotaAttainmentRow(ReadModel):
    """One quota: achieved, target and ratio as decimal strings in ``unit`` (the quota's
    currency, rounded half-even to its minor unit, or ``interactions``); status as in
    `GET /v1/quotas/{id}/attainment`."""

    quota_id: uuid.UUID
    manager_id: uuid.UUID
    manager_name: str
    metric: Metric
    unit: str
    period_start: datetime
    period_end: datetime
    target: str
    achieved: str
    ratio: str = Field(description="achieved ÷ target, 4 decimals")
    status: AttainmentStatus


class TeamRollupRow(ReadModel):
    """One lead's team (the lead and everyone reporting to them, recursively) for one
    metric, as `GET /v1/managers/{id}/attainment`: sales in the report's ``currency``."""

    lead_id: uuid.UUID
    lead_name: str
    metric: Metric
    unit: str
    target: str
    achieved: str
    ratio: str = Field(description="achieved ÷ target, 4 decimals")
    quotas: int = Field(description="Number of quotas rolled up.")


class QuotaAttainmentReport(ReadModel):
    """Every quota inside the period in the caller's scope, and one roll-up per metric
    for every lead among them (a manager with someone reporting to them)."""

    period: str
    period_start: datetime
    period_end: datetime
    as_of: datetime
    currency: str = Field(description="Currency of the team roll-ups.")
    quotas: list[QuotaAttainmentRow]
    teams: list[TeamRollupRow]


# --- Complaints -----------------------------------------------------------------------


class ComplaintsReport(ReadModel):
    """Complaints received in ``[received_from, received_to)`` in the caller's scope.

    ``breached``: complaints past either SLA target (first response or resolution), as
    ``breached`` on `GET /v1/complaints`, evaluated now; ``breach_rate`` = breached ÷
    total, 4 decimals ("0.0000" when there are none)."""

    received_from: datetime | None
    received_to: datetime | None
    total: int
    breached: int
    breach_rate: str
    by_status: dict[Status, int]
    by_severity: dict[Severity, int]
    by_category: dict[Category, int]
