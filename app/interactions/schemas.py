"""Request and response bodies of ``/v1/interactions``."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import Field, StringConstraints, model_validator

from app.core.pagination import Page, PageQuery
from app.core.schemas import AuditedRead, Instant, Integer, ReadModel, StrictModel
from app.interactions.models import Channel, Direction, Sentiment

Subject = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
Notes = Annotated[str, StringConstraints(max_length=20_000)]
Decision = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class NextStep(StrictModel):
    """A follow-up agreed in the interaction."""

    description: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)
    ]
    due_at: Instant | None = None
    done: bool = False


class NextStepRead(ReadModel):
    description: str
    due_at: datetime | None
    done: bool


class InteractionCreate(StrictModel):
    client_id: uuid.UUID
    manager_id: uuid.UUID | None = Field(
        default=None, description="Default: the caller, when the caller is a manager."
    )
    channel: Channel
    direction: Direction
    occurred_at: Instant = Field(description="At most 5 minutes in the future.")
    duration_minutes: Integer | None = Field(default=None, ge=0, le=24 * 60 * 7)
    subject: Subject
    notes: Notes | None = None
    sentiment: Sentiment | None = None
    decisions: list[Decision] = Field(default_factory=list, max_length=100)
    next_step: NextStep | None = None


class InteractionUpdate(StrictModel):
    channel: Channel | None = None
    direction: Direction | None = None
    occurred_at: Instant | None = None
    duration_minutes: Integer | None = Field(default=None, ge=0, le=24 * 60 * 7)
    subject: Subject | None = None
    notes: Notes | None = None
    sentiment: Sentiment | None = None
    decisions: list[Decision] | None = Field(default=None, max_length=100)
    next_step: NextStep | None = None


class InteractionRead(AuditedRead):
    client_id: uuid.UUID
    manager_id: uuid.UUID
    channel: Channel
    direction: Direction
    occurred_at: datetime
    duration_minutes: int | None
    subject: str
    notes: str | None
    sentiment: Sentiment | None
    decisions: list[str]
    next_step: NextStepRead | None

    @model_validator(mode="before")
    @classmethod
    def _nest_next_step(cls, data: Any) -> Any:
        if isinstance(data, dict) or not hasattr(data, "next_step_description"):
            return data
        values = {name: getattr(data, name) for name in cls.model_fields if name != "next_step"}
        values["next_step"] = (
            None
            if data.next_step_description is None
            else {
                "description": data.next_step_description,
                "due_at": data.next_step_due_at,
                "done": bool(data.next_step_done),
            }
        )
        return values


class InteractionPage(Page[InteractionRead]):
    """A page of interactions."""


class InteractionFilters(PageQuery):
    """Filters of ``GET /v1/interactions``; all combine with AND."""

    client_id: uuid.UUID | None = None
    manager_id: uuid.UUID | None = None
    channel: Channel | None = None
    occurred_from: Instant | None = Field(default=None, description="Inclusive.")
    occurred_to: Instant | None = Field(default=None, description="Exclusive.")
    next_step_overdue: bool | None = Field(
        default=None, description="true: only open next steps whose due time has passed."
    )
