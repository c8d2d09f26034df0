"""Complaints, their status history and the SLA policies that time them."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Interval,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, ResourceMixin
from app.interactions.models import CHANNELS_SQL


class Severity(StrEnum):
    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"


class Category(StrEnum):
    product = "product"
    service = "service"
    billing = "billing"
    delivery = "delivery"
    communication = "communication"
    other = "other"


class Status(StrEnum):
    open = "open"
    acknowledged = "acknowledged"
    in_progress = "in_progress"
    waiting_on_client = "waiting_on_client"
    resolved = "resolved"
    closed = "closed"


# DESIGN §2: open → acknowledged → in_progress ⇄ waiting_on_client → resolved → closed,
# resolved → in_progress on reopen (in_progress → resolved directly too).
TRANSITIONS: dict[Status, tuple[Status, ...]] = {
    Status.open: (Status.acknowledged,),
    Status.acknowledged: (Status.in_progress,),
    Status.in_progress: (Status.waiting_on_client, Status.resolved),
    Status.waiting_on_client: (Status.in_progress, Status.resolved),
    Status.resolved: (Status.closed, Status.in_progress),
    Status.closed: (),
}
# Statuses in which the resolution clock runs; it is stopped while waiting on the client
# and once resolved or closed.
CLOCK_RUNNING = frozenset({Status.open, Status.acknowledged, Status.in_progress})

SEVERITIES_SQL = "'low', 'medium', 'high', 'critical'"
STATUSES_SQL = ", ".join(f"'{s.value}'" for s in Status)


class Complaint(ResourceMixin, Base):
    """A complaint. ``active_time``, ``clock_since`` and ``clock_running`` summarise its
    history (time spent in clock-running statuses up to the last transition), so SLA due
    times are one expression over the row and the policy, recomputed on every read."""

    __tablename__ = "complaints"

    client_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("clients.id", ondelete="RESTRICT"), nullable=False
    )
    title: Mapped[str] = mapped_column(String(300), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    category: Mapped[str] = mapped_column(String(20), nullable=False)
    severity: Mapped[str] = mapped_column(String(10), nullable=False)
    channel: Mapped[str | None] = mapped_column(String(20))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    assignee_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("managers.id", ondelete="RESTRICT")
    )
    status: Mapped[str] = mapped_column(String(20), nullable=False, server_default="open")
    resolution: Mapped[str | None] = mapped_column(Text)
    root_cause: Mapped[str | None] = mapped_column(Text)
    first_responded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    active_time: Mapped[timedelta] = mapped_column(
        Interval, nullable=False, server_default=text("interval '0'")
    )
    clock_since: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    clock_running: Mapped[bool] = mapped_column(
        Boolean, nullable=False, server_default=text("true")
    )
    external_ref: Mapped[str | None] = mapped_column(String(100), unique=True)

    __table_args__ = (
        CheckConstraint(
            "category IN ('product', 'service', 'billing', 'delivery', 'communication', 'other')",
            name="category",
        ),
        CheckConstraint(f"severity IN ({SEVERITIES_SQL})", name="severity"),
        CheckConstraint(f"status IN ({STATUSES_SQL})", name="status"),
        CheckConstraint(f"channel IS NULL OR channel IN ({CHANNELS_SQL})", name="channel"),
        CheckConstraint(
            "status NOT IN ('resolved', 'closed') OR resolution IS NOT NULL",
            name="resolution_when_resolved",
        ),
        Index("ix_complaints_client_id_received_at", "client_id", "received_at"),
        Index("ix_complaints_assignee_id", "assignee_id"),
        Index("ix_complaints_created_at_id", "created_at", "id"),
        Index(
            "ix_complaints_unresolved",
            "severity",
            postgresql_where=text("status NOT IN ('resolved', 'closed')"),
        ),
    )


class ComplaintTransition(Base):
    """One status change (the first row is the creation: no ``from_status``, ``open``)."""

    __tablename__ = "complaint_transitions"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    seq: Mapped[int] = mapped_column(BigInteger, Identity(), nullable=False, unique=True)
    complaint_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("complaints.id", ondelete="CASCADE"), nullable=False
    )
    client_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("clients.id", ondelete="RESTRICT"), nullable=False
    )
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20), nullable=False)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    actor: Mapped[str] = mapped_column(String(200), nullable=False)
    note: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        CheckConstraint(f"to_status IN ({STATUSES_SQL})", name="to_status"),
        Index("ix_complaint_transitions_complaint_id_at", "complaint_id", "at", "seq"),
        Index("ix_complaint_transitions_client_id_at", "client_id", "at"),
    )


class SlaPolicy(ResourceMixin, Base):
    """Targets in elapsed hours (a 24/7 clock, so DST changes no target) for one severity,
    optionally for one client segment (which then wins over the default)."""

    __tablename__ = "sla_policies"

    severity: Mapped[str] = mapped_column(String(10), nullable=False)
    segment: Mapped[str | None] = mapped_column(String(20))
    first_response_hours: Mapped[int] = mapped_column(Integer, nullable=False)
    resolution_hours: Mapped[int] = mapped_column(Integer, nullable=False)

    __table_args__ = (
        CheckConstraint(f"severity IN ({SEVERITIES_SQL})", name="severity"),
        CheckConstraint(
            "first_response_hours > 0 AND resolution_hours > 0", name="positive_targets"
        ),
        CheckConstraint("resolution_hours >= first_response_hours", name="resolution_after"),
        Index(
            "uq_sla_policies_severity_segment",
            "severity",
            "segment",
            unique=True,
            postgresql_nulls_not_distinct=True,
        ),
    )
