"""Assignments: who is responsible for a client, over a half-open time range."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import CheckConstraint, Computed, DateTime, ForeignKey, Index, String, text
from sqlalchemy.dialects.postgresql import TSTZRANGE, ExcludeConstraint
from sqlalchemy.orm import Mapped, deferred, mapped_column

from app.core.db import Base, ResourceMixin


class AssignmentRole(StrEnum):
    primary = "primary"
    secondary = "secondary"
    cover = "cover"


class Absence(ResourceMixin, Base):
    """A manager's absence window and who covers their clients during it."""

    __tablename__ = "absences"

    manager_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("managers.id", ondelete="RESTRICT"), nullable=False, index=True
    )
    cover_manager_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("managers.id", ondelete="RESTRICT"), nullable=False, index=True
    )
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    reason: Mapped[str | None] = mapped_column(String(500))

    __table_args__ = (
        CheckConstraint("ends_at > starts_at", name="ends_after_start"),
        CheckConstraint("cover_manager_id <> manager_id", name="cover_is_someone_else"),
    )


class Assignment(ResourceMixin, Base):
    """``[starts_at, ends_at)``; ``ends_at`` null means open-ended. ``period`` is the same
    range as a generated ``tstzrange`` that the exclusion constraints work on."""

    __tablename__ = "assignments"

    client_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("clients.id", ondelete="RESTRICT"), nullable=False
    )
    manager_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("managers.id", ondelete="RESTRICT"), nullable=False
    )
    role: Mapped[str] = mapped_column(String(20), nullable=False)
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    ends_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str | None] = mapped_column(String(500))
    absence_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("absences.id", ondelete="RESTRICT"), index=True
    )
    external_ref: Mapped[str | None] = mapped_column(String(100), unique=True)
    period: Mapped[Any] = deferred(
        mapped_column(TSTZRANGE, Computed("tstzrange(starts_at, ends_at, '[)')", persisted=True))
    )

    __table_args__ = (
        CheckConstraint("role IN ('primary', 'secondary', 'cover')", name="role"),
        CheckConstraint("ends_at IS NULL OR ends_at > starts_at", name="ends_after_start"),
        ExcludeConstraint(
            ("client_id", "="),
            ("period", "&&"),
            using="gist",
            where=text("role = 'primary'"),
            name="ex_assignments_one_primary",
        ),
        ExcludeConstraint(
            ("client_id", "="),
            ("period", "&&"),
            using="gist",
            where=text("role = 'cover'"),
            name="ex_assignments_one_cover",
        ),
        # A manager cannot cover a client they are primary for at the same time.
        # manager_id first: the book of business query then uses this index too.
        ExcludeConstraint(
            ("manager_id", "="),
            ("client_id", "="),
            ("period", "&&"),
            using="gist",
            where=text("role IN ('primary', 'cover')"),
            name="ex_assignments_cover_not_primary",
        ),
        Index("ix_assignments_manager_id_period", "manager_id", "period", postgresql_using="gist"),
        Index("ix_assignments_client_id_starts_at", "client_id", "starts_at"),
        Index("ix_assignments_created_at_id", "created_at", "id"),
    )
