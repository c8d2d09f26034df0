"""Create the rule catalogue (seeded with DESIGN §4), its versions, runs, flags, flag
history and client health history.

Revision ID: 0006_rules
Revises: 0005_sales_quotas
Create Date: 2026-11-29 23:14:26.442940+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006_rules"
down_revision: str | None = "0005_sales_quotas"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# The first catalogue (DESIGN §4) with its default parameters: key, subject, severity, params.
CATALOGUE = [
    (
        "no_recent_contact",
        "client",
        "medium",
        {
            "days_by_segment": {
                "strategic": 30,
                "key": 30,
                "enterprise": 45,
                "mid_market": 90,
                "small": 90,
            }
        },
    ),
    ("unassigned", "client", "high", {}),
    ("open_complaints", "client", "high", {"min_open": 2, "any_critical": True}),
    ("complaint_sla_breached", "client", "high", {}),
    ("negative_sentiment", "client", "medium", {"window": 3, "min_negative": 2}),
    ("overdue_follow_up", "client", "low", {"days_overdue": 7}),
    ("renewal_at_risk", "client", "high", {"within_days": 60, "no_contact_days": 30}),
    (
        "revenue_decline",
        "client",
        "medium",
        {"window_days": 90, "max_ratio": "0.5", "min_previous": "1000"},
    ),
    ("quota_behind_pace", "quota", "medium", {"pace_ratio": "0.8", "min_elapsed_share": "0.3333"}),
    ("quota_missed", "quota", "high", {"lookback_days": 120}),
    ("quota_missed_repeatedly", "manager", "critical", {"consecutive": 2}),
]


def upgrade() -> None:
    op.create_table(
        "rule_runs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("trigger", sa.String(length=20), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("raised", sa.Integer(), nullable=False),
        sa.Column("still_open", sa.Integer(), nullable=False),
        sa.Column("resolved", sa.Integer(), nullable=False),
        sa.Column("reopened", sa.Integer(), nullable=False),
        sa.Column("per_rule", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rule_runs")),
    )
    op.create_index("ix_rule_runs_started_at", "rule_runs", ["started_at"], unique=False)
    op.create_table(
        "rules",
        sa.Column("key", sa.String(length=50), nullable=False),
        sa.Column("subject_type", sa.String(length=10), nullable=False),
        sa.Column("severity", sa.String(length=10), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("params", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("updated_by", sa.String(length=200), nullable=True),
        sa.CheckConstraint(
            "severity IN ('low', 'medium', 'high', 'critical')", name=op.f("ck_rules_severity")
        ),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_rules")),
    )
    op.create_table(
        "client_health_history",
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("run_id", sa.Uuid(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "score BETWEEN 0 AND 100", name=op.f("ck_client_health_history_score_range")
        ),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_client_health_history_client_id_clients"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["rule_runs.id"],
            name=op.f("fk_client_health_history_run_id_rule_runs"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("client_id", "run_id", name=op.f("pk_client_health_history")),
    )
    op.create_index(
        "ix_client_health_history_client_id_at",
        "client_health_history",
        ["client_id", "at"],
        unique=False,
    )
    op.create_table(
        "rule_versions",
        sa.Column("rule_key", sa.String(length=50), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("severity", sa.String(length=10), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("params", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "changed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("changed_by", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["rule_key"],
            ["rules.key"],
            name=op.f("fk_rule_versions_rule_key_rules"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("rule_key", "version", name=op.f("pk_rule_versions")),
    )
    op.create_table(
        "flags",
        sa.Column("rule_key", sa.String(length=50), nullable=False),
        sa.Column("rule_version", sa.Integer(), nullable=False),
        sa.Column("subject_type", sa.String(length=10), nullable=False),
        sa.Column("subject_id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.Uuid(), nullable=True),
        sa.Column("quota_id", sa.Uuid(), nullable=True),
        sa.Column("manager_id", sa.Uuid(), nullable=True),
        sa.Column("severity", sa.String(length=10), nullable=False),
        sa.Column("status", sa.String(length=15), nullable=False),
        sa.Column("evidence", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("raised_by_run_id", sa.Uuid(), nullable=False),
        sa.Column("snoozed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_by", sa.String(length=20), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("created_by", sa.String(length=200), nullable=True),
        sa.Column("updated_by", sa.String(length=200), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "(status = 'resolved') = (resolved_at IS NOT NULL)", name=op.f("ck_flags_resolved_at")
        ),
        sa.CheckConstraint(
            "(status = 'snoozed') = (snoozed_until IS NOT NULL)",
            name=op.f("ck_flags_snooze_has_date"),
        ),
        sa.CheckConstraint(
            "severity IN ('low', 'medium', 'high', 'critical')", name=op.f("ck_flags_severity")
        ),
        sa.CheckConstraint(
            "status IN ('open', 'acknowledged', 'snoozed', 'resolved')",
            name=op.f("ck_flags_status"),
        ),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_flags_client_id_clients"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["manager_id"],
            ["managers.id"],
            name=op.f("fk_flags_manager_id_managers"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["quota_id"], ["quotas.id"], name=op.f("fk_flags_quota_id_quotas"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["raised_by_run_id"],
            ["rule_runs.id"],
            name=op.f("fk_flags_raised_by_run_id_rule_runs"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["rule_key"], ["rules.key"], name=op.f("fk_flags_rule_key_rules"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flags")),
    )
    op.create_index("ix_flags_client_id_status", "flags", ["client_id", "status"], unique=False)
    op.create_index("ix_flags_created_at_id", "flags", ["created_at", "id"], unique=False)
    op.create_index("ix_flags_manager_id", "flags", ["manager_id"], unique=False)
    op.create_index("ix_flags_quota_id", "flags", ["quota_id"], unique=False)
    op.create_index(
        "uq_flags_rule_key_subject_id_unresolved",
        "flags",
        ["rule_key", "subject_id"],
        unique=True,
        postgresql_where=sa.text("status <> 'resolved'"),
    )
    op.create_table(
        "flag_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("flag_id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.Uuid(), nullable=True),
        sa.Column("from_status", sa.String(length=15), nullable=True),
        sa.Column("to_status", sa.String(length=15), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("run_id", sa.Uuid(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_flag_events_client_id_clients"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["flag_id"], ["flags.id"], name=op.f("fk_flag_events_flag_id_flags"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["rule_runs.id"],
            name=op.f("fk_flag_events_run_id_rule_runs"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flag_events")),
        sa.UniqueConstraint("seq", name=op.f("uq_flag_events_seq")),
    )
    op.create_index("ix_flag_events_client_id_at", "flag_events", ["client_id", "at"], unique=False)
    op.create_index(op.f("ix_flag_events_flag_id"), "flag_events", ["flag_id"], unique=False)

    rules = sa.table(
        "rules",
        sa.column("key", sa.String()),
        sa.column("subject_type", sa.String()),
        sa.column("severity", sa.String()),
        sa.column("enabled", sa.Boolean()),
        sa.column("params", postgresql.JSONB()),
        sa.column("version", sa.Integer()),
        sa.column("updated_by", sa.String()),
    )
    versions = sa.table(
        "rule_versions",
        sa.column("rule_key", sa.String()),
        sa.column("version", sa.Integer()),
        sa.column("severity", sa.String()),
        sa.column("enabled", sa.Boolean()),
        sa.column("params", postgresql.JSONB()),
        sa.column("changed_by", sa.String()),
    )
    op.bulk_insert(
        rules,
        [
            {
                "key": key,
                "subject_type": subject,
                "severity": severity,
                "enabled": True,
                "params": params,
                "version": 1,
                "updated_by": "migration",
            }
            for key, subject, severity, params in CATALOGUE
        ],
    )
    op.bulk_insert(
        versions,
        [
            {
                "rule_key": key,
                "version": 1,
                "severity": severity,
                "enabled": True,
                "params": params,
                "changed_by": "migration",
            }
            for key, _, severity, params in CATALOGUE
        ],
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_flag_events_flag_id"), table_name="flag_events")
    op.drop_index("ix_flag_events_client_id_at", table_name="flag_events")
    op.drop_table("flag_events")
    op.drop_index(
        "uq_flags_rule_key_subject_id_unresolved",
        table_name="flags",
        postgresql_where=sa.text("status <> 'resolved'"),
    )
    op.drop_index("ix_flags_quota_id", table_name="flags")
    op.drop_index("ix_flags_manager_id", table_name="flags")
    op.drop_index("ix_flags_created_at_id", table_name="flags")
    op.drop_index("ix_flags_client_id_status", table_name="flags")
    op.drop_table("flags")
    op.drop_table("rule_versions")
    op.drop_index("ix_client_health_history_client_id_at", table_name="client_health_history")
    op.drop_table("client_health_history")
    op.drop_table("rules")
    op.drop_index("ix_rule_runs_started_at", table_name="rule_runs")
    op.drop_table("rule_runs")
