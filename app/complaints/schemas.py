"""Request and response bodies of complaints, their transitions and SLA policies."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import Field, StringConstraints

from app.clients.models import Segment
from app.complaints.models import Category, Severity, Status
from app.core.pagination import Page, PageQuery
from app.core.schemas import AuditedRead, Instant, Integer, ReadModel, StrictModel
from app.interactions.models import Channel

Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
LongText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20_000)]


class ComplaintCreate(StrictModel):
    client_id: uuid.UUID
    title: Title
    description: LongText | None = None
    category: Category
    severity: Severity
    channel: Channel | None = None
    received_at: Instant | None = Field(
        default=None, description="Default: now; at most 5 minutes in the future."
    )
    assignee_id: uuid.UUID | None = Field(
        default=None, description="Default: the manager responsible at received_at."
    )
    root_cause: LongText | None = None


class ComplaintUpdate(StrictModel):
    """Status changes go through ``POST /v1/complaints/{id}/transitions``."""

    title: Title | None = None
    description: LongText | None = None
    category: Category | None = None
    severity: Severity | None = None
    channel: Channel | None = None
    assignee_id: uuid.UUID | None = None
    resolution: LongText | None = None
    root_cause: LongText | None = None


class SlaClock(StrEnum):
    running = "running"
    paused = "paused"  # waiting on the client
    stopped = "stopped"  # resolved or closed


class SlaRead(ReadModel):
    """Due times and breaches, from the history and the current policy (elapsed hours)."""

    first_response_hours: int
    resolution_hours: int
    first_response_due_at: datetime
    first_responded_at: datetime | None
    first_response_breached: bool = Field(description="First response after its due time.")
    resolution_due_at: datetime | None = Field(
        description="When the resolution clock reaches the target, counting from the current "
        "state; null while the clock is not running and the target is not yet reached."
    )
    resolution_breached: bool
    clock: SlaClock


class ComplaintRead(AuditedRead):
    client_id: uuid.UUID
    title: str
    description: str | None
    category: Category
    severity: Severity
    channel: Channel | None
    received_at: datetime
    assignee_id: uuid.UUID | None
    status: Status
    resolution: str | None
    root_cause: str | None
    resolved_at: datetime | None
    sla: SlaRead
    breached: bool = Field(description="Either SLA target is breached.")


class ComplaintPage(Page[ComplaintRead]):
    """A page of complaints."""


class ComplaintFilters(PageQuery):
    """Filters of ``GET /v1/complaints``; all combine with AND."""

    client_id: uuid.UUID | None = None
    assignee_id: uuid.UUID | None = None
    status: Status | None = None
    severity: Severity | None = None
    category: Category | None = None
    breached: bool | None = Field(default=None, description="Either SLA target breached.")
    received_from: Instant | None = Field(default=None, description="Inclusive.")
    received_to: Instant | None = Field(default=None, description="Exclusive.")


class TransitionCreate(StrictModel):
    to: Status
    note: LongText | None = None
    resolution: LongText | None = Field(
        default=None, description="Required to reach `resolved` unless already set."
    )
    root_cause: LongText | None = None
    at: Instant | None = Field(
        default=None,
        description="Default: now. For backfills: not before the previous transition, not "
        "more than 5 minutes ahead.",
    )


class TransitionRead(ReadModel):
    id: uuid.UUID
    complaint_id: uuid.UUID
    from_status: Status | None
    to_status: Status
    at: datetime
    actor: str
    note: str | None


class TransitionPage(Page[TransitionRead]):
    """A page of a complaint's history, in order."""


class TransitionResult(TransitionRead):
    complaint: ComplaintRead


class SlaPolicyCreate(StrictModel):
    severity: Severity
    segment: Segment | None = Field(default=None, description="Null: the default for the severity.")
    first_response_hours: Integer = Field(ge=1, le=8760)
    resolution_hours: Integer = Field(ge=1, le=8760)


class SlaPolicyUpdate(StrictModel):
    first_response_hours: Integer | None = Field(default=None, ge=1, le=8760)
    resolution_hours: Integer | None = Field(default=None, ge=1, le=8760)


class SlaPolicyRead(AuditedRead):
    severity: Severity
    segment: Segment | None
    first_response_hours: int
    resolution_hours: int


class SlaPolicyPage(Page[SlaPolicyRead]):
    """A page of SLA policies."""
