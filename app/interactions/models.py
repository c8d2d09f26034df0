"""Interactions: every logged contact with a client."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    ARRAY,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, ResourceMixin


class Channel(StrEnum):
    email = "email"
    phone = "phone"
    video_call = "video_call"
    meeting = "meeting"
    presentation = "presentation"
    screen_share = "screen_share"
    chat = "chat"
    event = "event"
    other = "other"


class Direction(StrEnum):
    inbound = "inbound"
    outbound = "outbound"


class Sentiment(StrEnum):
    positive = "positive"
    neutral = "neutral"
    negative = "negative"


CHANNELS_SQL = ", ".join(f"'{c.value}'" for c in Channel)


class Interaction(ResourceMixin, Base):
    __tablename__ = "interactions"

    client_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("clients.id", ondelete="RESTRICT"), nullable=False
    )
    manager_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("managers.id", ondelete="RESTRICT"), nullable=False
    )
    channel: Mapped[str] = mapped_column(String(20), nullable=False)
    direction: Mapped[str] = mapped_column(String(10), nullable=False)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    duration_minutes: Mapped[int | None] = mapped_column(Integer)
    subject: Mapped[str] = mapped_column(String(300), nullable=False)
    notes: Mapped[str | None] = mapped_column(Text)
    sentiment: Mapped[str | None] = mapped_column(String(10))
    decisions: Mapped[list[str]] = mapped_column(
        ARRAY(Text), nullable=False, server_default=text("'{}'")
    )
    next_step_description: Mapped[str | None] = mapped_column(String(500))
    next_step_due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    next_step_done: Mapped[bool | None] = mapped_column(Boolean)
    external_ref: Mapped[str | None] = mapped_column(String(100), unique=True)

    __table_args__ = (
        CheckConstraint(f"channel IN ({CHANNELS_SQL})", name="channel"),
        CheckConstraint("direction IN ('inbound', 'outbound')", name="direction"),
        CheckConstraint(
            "sentiment IS NULL OR sentiment IN ('positive', 'neutral', 'negative')",
            name="sentiment",
        ),
        CheckConstraint("duration_minutes IS NULL OR duration_minutes >= 0", name="duration"),
        CheckConstraint(
            "(next_step_description IS NULL) = (next_step_done IS NULL)", name="next_step"
        ),
        # (client_id, occurred_at), (manager_id, occurred_at) and the open next steps by
        # due date are indexed with included columns in app/rules/models.py.
        Index("ix_interactions_created_at_id", "created_at", "id"),
    )
