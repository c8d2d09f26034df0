"""Request and response bodies of assignments, handovers, absences and books of business."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Self

from pydantic import Field, StringConstraints, model_validator

from app.assignments.models import AssignmentRole
from app.clients.schemas import ClientRead
from app.core.pagination import Page, PageQuery
from app.core.schemas import AuditedRead, Instant, InstantOrDay, ReadModel, StrictModel

Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class AssignmentCreate(StrictModel):
    client_id: uuid.UUID
    manager_id: uuid.UUID
    role: AssignmentRole
    starts_at: Instant | None = Field(default=None, description="Default: now.")
    ends_at: Instant | None = Field(default=None, description="Null: open-ended.")
    reason: Reason | None = None

    @model_validator(mode="after")
    def _ends_after_start(self) -> Self:
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


class AssignmentUpdate(StrictModel):
    """Only the end (and the reason) of an assignment can change."""

    ends_at: Instant | None = Field(
        default=None, description="New end; null makes it open-ended again."
    )
    reason: Reason | None = None


class AssignmentRead(AuditedRead):
    client_id: uuid.UUID
    manager_id: uuid.UUID
    role: AssignmentRole
    starts_at: datetime
    ends_at: datetime | None
    reason: str | None
    absence_id: uuid.UUID | None


class AssignmentPage(Page[AssignmentRead]):
    """A page of assignments."""


class AssignmentFilters(PageQuery):
    """Filters of ``GET /v1/assignments``; all combine with AND."""

    client_id: uuid.UUID | None = None
    manager_id: uuid.UUID | None = None
    role: AssignmentRole | None = None
    active_at: Instant | None = Field(
        default=None, description="Only assignments whose [starts_at, ends_at) holds it."
    )


class HandoverRequest(StrictModel):
    to_manager_id: uuid.UUID
    at: Instant | None = Field(default=None, description="Default: now; not in the past.")
    reason: Reason | None = None


class HandoverRead(ReadModel):
    """The primary assignment that ended (if any) and the one that started."""

    client_id: uuid.UUID
    at: datetime
    ended: AssignmentRead | None
    started: AssignmentRead
    id: uuid.UUID = Field(description="Id of the started assignment.")
    version: int = Field(description="Version of the started assignment.")


class AbsenceCreate(StrictModel):
    starts_at: Instant
    ends_at: Instant
    cover_manager_id: uuid.UUID
    reason: Reason | None = None

    @model_validator(mode="after")
    def _ends_after_start(self) -> Self:
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


class AbsenceRead(AuditedRead):
    manager_id: uuid.UUID
    cover_manager_id: uuid.UUID
    starts_at: datetime
    ends_at: datetime
    reason: str | None
    assignments: list[AssignmentRead] = Field(
        description="The cover assignments created, one per client covered."
    )


class Responsibility(ReadModel):
    """Who is responsible for a client at ``at``: the active cover, else the primary."""

    client_id: uuid.UUID
    at: datetime
    manager_id: uuid.UUID
    role: AssignmentRole
    assignment: AssignmentRead


class ResponsibleQuery(StrictModel):
    at: Instant | None = Field(default=None, description="Default: now.")


class BookQuery(PageQuery):
    as_of: InstantOrDay | None = Field(
        default=None,
        description="An instant, or a date meaning 00:00 of that day in the organisation's "
        "time zone. Default: now.",
    )


class BookEntry(ReadModel):
    """A client in a manager's book of business and the role that puts it there."""

    role: AssignmentRole
    assignment_id: uuid.UUID
    starts_at: datetime
    ends_at: datetime | None
    client: ClientRead


class BookPage(Page[BookEntry]):
    """A page of a book of business, ordered like the client list."""
