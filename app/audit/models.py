"""The append-only audit log."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ARRAY, BigInteger, DateTime, Identity, Index, String, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base


class AuditEvent(Base):
    """One write: who (actor, roles), from where (source, request id), when, what
    (resource, id, action) and the changed fields as ``{field: [before, after]}``.

    Rows are never updated or deleted: triggers refuse UPDATE, DELETE and TRUNCATE
    (migration 0008), whatever the role."""

    __tablename__ = "audit_events"

    seq: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    actor: Mapped[str] = mapped_column(String(200), nullable=False)
    roles: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False)
    source: Mapped[str] = mapped_column(String(20), nullable=False)
    request_id: Mapped[str | None] = mapped_column(String(100))
    # Byte order ("C"): names and ids, never sorted for people, and the index on them
    # takes a row per bulk-written record (a rule run, an import), where comparing
    # under the database's locale costs a third of the audit row.
    resource: Mapped[str] = mapped_column(String(50, collation="C"), nullable=False)
    resource_id: Mapped[str] = mapped_column(String(100, collation="C"), nullable=False)
    action: Mapped[str] = mapped_column(String(20), nullable=False)
    client_id: Mapped[uuid.UUID | None] = mapped_column()
    changes: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)

    __table_args__ = (
        Index("ix_audit_events_resource_resource_id", "resource", "resource_id"),
        Index("ix_audit_events_client_id_seq", "client_id", "seq"),
        Index("ix_audit_events_at", "at"),
        Index("ix_audit_events_actor", "actor"),
    )
