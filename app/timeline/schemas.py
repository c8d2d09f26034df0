"""Shapes of a client's timeline."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field

from app.core.pagination import Page, PageQuery
from app.core.schemas import ReadModel


class EventKind(StrEnum):
    interaction = "interaction"
    complaint_received = "complaint_received"
    complaint_transition = "complaint_transition"
    assignment_started = "assignment_started"
    assignment_ended = "assignment_ended"
    flag_raised = "flag_raised"
    flag_resolved = "flag_resolved"


class TimelineOrder(StrEnum):
    asc = "asc"
    desc = "desc"


class TimelineEvent(ReadModel):
    """One thing that happened to the client. ``id`` is the source record's id (an
    interaction, complaint, transition or assignment); ``data`` depends on ``kind``."""

    at: datetime
    kind: EventKind
    id: uuid.UUID
    summary: str
    data: dict[str, Any]


class TimelinePage(Page[TimelineEvent]):
    """A page of a client's timeline."""


class TimelineQuery(PageQuery):
    order: TimelineOrder = Field(
        default=TimelineOrder.asc, description="asc: oldest first; desc: newest first."
    )
    kinds: list[EventKind] | None = Field(default=None, description="Only these kinds.")
