"""The rules module's tables: catalogue and its versions, runs, flags, flag history,
client health history."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, ResourceMixin
from app.interactions.models import Interaction
from app.sales.models import Sale


class FlagStatus(StrEnum):
    open = "open"
    acknowledged = "acknowledged"
    snoozed = "snoozed"
    resolved = "resolved"


class SubjectType(StrEnum):
    client = "client"
    quota = "quota"
    manager = "manager"


SEVERITIES_SQL = "'low', 'medium', 'high', 'critical'"


class Rule(Base):
    """The current configuration of one rule of the catalogue (see ``catalogue.py``)."""

    __tablename__ = "rules"
    __audited__ = True

    key: Mapped[str] = mapped_column(String(50), primary_key=True)
    subject_type: Mapped[str] = mapped_column(String(10), nullable=False)
    severity: Mapped[str] = mapped_column(String(10), nullable=False)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False)
    params: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    updated_by: Mapped[str | None] = mapped_column(String(200))

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (CheckConstraint(f"severity IN ({SEVERITIES_SQL})", name="severity"),)


class RuleVersion(Base):
    """Every configuration a rule has had; flags record the version that raised them."""

    __tablename__ = "rule_versions"

    rule_key: Mapped[str] = mapped_column(
        ForeignKey("rules.key", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    severity: Mapped[str] = mapped_column(String(10), nullable=False)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False)
    params: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    changed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    changed_by: Mapped[str | None] = mapped_column(String(200))


class RuleRun(Base):
    """One evaluation of every enabled rule at ``as_of``."""

    __tablename__ = "rule_runs"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    as_of: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    finished_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    duration_ms: Mapped[int] = mapped_column(Integer, nullable=False)
    trigger: Mapped[str] = mapped_column(String(20), nullable=False)
    actor: Mapped[str] = mapped_column(String(200), nullable=False)
    raised: Mapped[int] = mapped_column(Integer, nullable=False)
    still_open: Mapped[int] = mapped_column(Integer, nullable=False)
    resolved: Mapped[int] = mapped_column(Integer, nullable=False)
    reopened: Mapped[int] = mapped_column(Integer, nullable=False)
    per_rule: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)

    __table_args__ = (Index("ix_rule_runs_started_at", "started_at"),)


class Flag(ResourceMixin, Base):
    """A rule's finding about one subject (a client, a quota or a manager)."""

    __tablename__ = "flags"

    # rule_key, client_id and raised_by_run_id refer to rules, clients and rule_runs
    # through triggers that check a whole statement at once (migration 0012_rule_refs):
    # a run writes hundreds of thousands of flags, and a row-level foreign key costs a
    # trigger call and a locked parent row for each.
    rule_key: Mapped[str] = mapped_column(String(50), nullable=False)
    rule_version: Mapped[int] = mapped_column(Integer, nullable=False)
    subject_type: Mapped[str] = mapped_column(String(10), nullable=False)
    subject_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    client_id: Mapped[uuid.UUID | None] = mapped_column()
    quota_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("quotas.id", ondelete="CASCADE"))
    manager_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("managers.id", ondelete="RESTRICT")
    )
    severity: Mapped[str] = mapped_column(String(10), nullable=False)
    status: Mapped[str] = mapped_column(String(15), nullable=False)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    raised_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    raised_by_run_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    snoozed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_by: Mapped[str | None] = mapped_column(String(20))
    note: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        CheckConstraint("status IN ('open', 'acknowledged', 'snoozed', 'resolved')", name="status"),
        CheckConstraint(f"severity IN ({SEVERITIES_SQL})", name="severity"),
        CheckConstraint(
            "(status = 'snoozed') = (snoozed_until IS NOT NULL)", name="snooze_has_date"
        ),
        CheckConstraint("(status = 'resolved') = (resolved_at IS NOT NULL)", name="resolved_at"),
        # At most one unresolved flag per rule and subject.
        Index(
            "uq_flags_rule_key_subject_id_unresolved",
            "rule_key",
            "subject_id",
            unique=True,
            postgresql_where=text("status <> 'resolved'"),
        ),
        Index("ix_flags_client_id_status", "client_id", "status"),
        # Partial: most flags are about a client and have neither (fewer index writes
        # when a run raises many flags); lookups by a value still use them.
        Index("ix_flags_quota_id", "quota_id", postgresql_where=text("quota_id IS NOT NULL")),
        Index("ix_flags_manager_id", "manager_id", postgresql_where=text("manager_id IS NOT NULL")),
        Index("ix_flags_created_at_id", "created_at", "id"),
    )


class FlagEvent(Base):
    """One step of a flag's life after its raise: acknowledged, snoozed, reopened,
    resolved. (The raise is the flag's own record: ``raised_at``, ``raised_by_run_id``;
    the history and the timeline show it from there.)"""

    __tablename__ = "flag_events"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    seq: Mapped[int] = mapped_column(BigInteger, Identity(), nullable=False, unique=True)
    flag_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("flags.id", ondelete="CASCADE"), nullable=False, index=True
    )
    client_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("clients.id", ondelete="RESTRICT")
    )
    from_status: Mapped[str | None] = mapped_column(String(15))
    to_status: Mapped[str] = mapped_column(String(15), nullable=False)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    actor: Mapped[str] = mapped_column(String(200), nullable=False)
    run_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("rule_runs.id", ondelete="RESTRICT")
    )
    note: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_flag_events_client_id_at", "client_id", "at"),)


class RuleWriteEpoch(Base):
    """One row, updated by a run when it starts writing flags and health points; a
    delete of a client, run, rule, manager or quota reads it FOR SHARE first (trigger
    ``wait_for_rule_writes``, migration 0012_rule_refs), so it waits for those writes
    and, in a REPEATABLE READ transaction that cannot see them, fails (40001)."""

    __tablename__ = "rule_write_epoch"

    id: Mapped[bool] = mapped_column(Boolean, primary_key=True, server_default=text("true"))
    runs: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default=text("0"))

    __table_args__ = (CheckConstraint("id", name="one_row"),)


class HealthPoint(Base):
    """A client's health score after a run that changed it."""

    __tablename__ = "client_health_history"

    # References checked per statement by triggers, as the flags' (migration 0012).
    client_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    run_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    score: Mapped[int] = mapped_column(Integer, nullable=False)

    __table_args__ = (
        CheckConstraint("score BETWEEN 0 AND 100", name="score_range"),
        Index("ix_client_health_history_client_id_at", "client_id", "at"),
    )


# Indexes of other domains' tables that exist for the rule engine (migration
# 0011_rules_perf), all read index-only: every client's last interactions with their
# sentiment, every manager's interactions with their channel (quota counts), the open
# next steps by due date with their client (overdue follow-ups), and the sales of a
# time window with their client, currency and amount (revenue decline).
Index(
    "ix_interactions_client_id_occurred_at_sentiment",
    Interaction.client_id,
    Interaction.occurred_at,
    postgresql_include=["sentiment"],
)
Index(
    "ix_interactions_manager_id_occurred_at_channel",
    Interaction.manager_id,
    Interaction.occurred_at,
    postgresql_include=["channel"],
)
Index(
    "ix_interactions_open_next_step_due_at_client_id",
    Interaction.next_step_due_at,
    postgresql_include=["client_id", "id"],
    postgresql_where=text("next_step_done IS false"),
)
Index(
    "ix_sales_closed_at_client_id",
    Sale.closed_at,
    postgresql_include=["client_id", "currency", "amount"],
)
