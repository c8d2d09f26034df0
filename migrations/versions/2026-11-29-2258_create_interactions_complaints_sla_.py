"""Create interactions, complaints with their transition history, and SLA policies (seeded).

Revision ID: 0004_interactions_complaints
Revises: 0003_assignments
Create Date: 2026-11-29 22:58:56.675085+00:00
"""

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004_interactions_complaints"
down_revision: str | None = "0003_assignments"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Issue 4 defaults: (severity, first response hours, resolution hours).
DEFAULT_SLA = [("critical", 1, 24), ("high", 4, 72), ("medium", 24, 120), ("low", 48, 240)]


def upgrade() -> None:
    op.create_table(
        "sla_policies",
        sa.Column("severity", sa.String(length=10), nullable=False),
        sa.Column("segment", sa.String(length=20), nullable=True),
        sa.Column("first_response_hours", sa.Integer(), nullable=False),
        sa.Column("resolution_hours", sa.Integer(), nullable=False),
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
            "severity IN ('low', 'medium', 'high', 'critical')",
            name=op.f("ck_sla_policies_severity"),
        ),
        sa.CheckConstraint(
            "first_response_hours > 0 AND resolution_hours > 0",
            name=op.f("ck_sla_policies_positive_targets"),
        ),
        sa.CheckConstraint(
            "resolution_hours >= first_response_hours",
            name=op.f("ck_sla_policies_resolution_after"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sla_policies")),
    )
    op.create_index(
        "uq_sla_policies_severity_segment",
        "sla_policies",
        ["severity", "segment"],
        unique=True,
        postgresql_nulls_not_distinct=True,
    )
    op.create_table(
        "complaints",
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("category", sa.String(length=20), nullable=False),
        sa.Column("severity", sa.String(length=10), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("assignee_id", sa.Uuid(), nullable=True),
        sa.Column("status", sa.String(length=20), server_default="open", nullable=False),
        sa.Column("resolution", sa.Text(), nullable=True),
        sa.Column("root_cause", sa.Text(), nullable=True),
        sa.Column("first_responded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "active_time", sa.Interval(), server_default=sa.text("interval '0'"), nullable=False
        ),
        sa.Column("clock_since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("clock_running", sa.Boolean(), server_default=sa.text("true"), nullable=False),
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
            "category IN ('product', 'service', 'billing', 'delivery', 'communication', 'other')",
            name=op.f("ck_complaints_category"),
        ),
        sa.CheckConstraint(
            "channel IS NULL OR channel IN ('email', 'phone', 'video_call', 'meeting', "
            "'presentation', 'screen_share', 'chat', 'event', 'other')",
            name=op.f("ck_complaints_channel"),
        ),
        sa.CheckConstraint(
            "severity IN ('low', 'medium', 'high', 'critical')", name=op.f("ck_complaints_severity")
        ),
        sa.CheckConstraint(
            "status IN ('open', 'acknowledged', 'in_progress', 'waiting_on_client', "
            "'resolved', 'closed')",
            name=op.f("ck_complaints_status"),
        ),
        sa.CheckConstraint(
            "status NOT IN ('resolved', 'closed') OR resolution IS NOT NULL",
            name=op.f("ck_complaints_resolution_when_resolved"),
        ),
        sa.ForeignKeyConstraint(
            ["assignee_id"],
            ["managers.id"],
            name=op.f("fk_complaints_assignee_id_managers"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_complaints_client_id_clients"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_complaints")),
    )
    op.create_index("ix_complaints_assignee_id", "complaints", ["assignee_id"], unique=False)
    op.create_index(
        "ix_complaints_client_id_received_at",
        "complaints",
        ["client_id", "received_at"],
        unique=False,
    )
    op.create_index("ix_complaints_created_at_id", "complaints", ["created_at", "id"], unique=False)
    op.create_index(
        "ix_complaints_unresolved",
        "complaints",
        ["severity"],
        unique=False,
        postgresql_where=sa.text("status NOT IN ('resolved', 'closed')"),
    )
    op.create_table(
        "interactions",
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("manager_id", sa.Uuid(), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("direction", sa.String(length=10), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_minutes", sa.Integer(), nullable=True),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("sentiment", sa.String(length=10), nullable=True),
        sa.Column("decisions", sa.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False),
        sa.Column("next_step_description", sa.String(length=500), nullable=True),
        sa.Column("next_step_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_step_done", sa.Boolean(), nullable=True),
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
            "channel IN ('email', 'phone', 'video_call', 'meeting', 'presentation', "
            "'screen_share', 'chat', 'event', 'other')",
            name=op.f("ck_interactions_channel"),
        ),
        sa.CheckConstraint(
            "direction IN ('inbound', 'outbound')", name=op.f("ck_interactions_direction")
        ),
        sa.CheckConstraint(
            "sentiment IS NULL OR sentiment IN ('positive', 'neutral', 'negative')",
            name=op.f("ck_interactions_sentiment"),
        ),
        sa.CheckConstraint(
            "(next_step_description IS NULL) = (next_step_done IS NULL)",
            name=op.f("ck_interactions_next_step"),
        ),
        sa.CheckConstraint(
            "duration_minutes IS NULL OR duration_minutes >= 0",
            name=op.f("ck_interactions_duration"),
        ),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_interactions_client_id_clients"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["manager_id"],
            ["managers.id"],
            name=op.f("fk_interactions_manager_id_managers"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_interactions")),
    )
    op.create_index(
        "ix_interactions_client_id_occurred_at",
        "interactions",
        ["client_id", "occurred_at"],
        unique=False,
    )
    op.create_index(
        "ix_interactions_created_at_id", "interactions", ["created_at", "id"], unique=False
    )
    op.create_index(
        "ix_interactions_manager_id_occurred_at",
        "interactions",
        ["manager_id", "occurred_at"],
        unique=False,
    )
    op.create_index(
        "ix_interactions_open_next_step_due_at",
        "interactions",
        ["next_step_due_at"],
        unique=False,
        postgresql_where=sa.text("next_step_done IS false"),
    )
    op.create_table(
        "complaint_transitions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("complaint_id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("from_status", sa.String(length=20), nullable=True),
        sa.Column("to_status", sa.String(length=20), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "to_status IN ('open', 'acknowledged', 'in_progress', 'waiting_on_client', "
            "'resolved', 'closed')",
            name=op.f("ck_complaint_transitions_to_status"),
        ),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_complaint_transitions_client_id_clients"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["complaint_id"],
            ["complaints.id"],
            name=op.f("fk_complaint_transitions_complaint_id_complaints"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_complaint_transitions")),
        sa.UniqueConstraint("seq", name=op.f("uq_complaint_transitions_seq")),
    )
    op.create_index(
        "ix_complaint_transitions_client_id_at",
        "complaint_transitions",
        ["client_id", "at"],
        unique=False,
    )
    op.create_index(
        "ix_complaint_transitions_complaint_id_at",
        "complaint_transitions",
        ["complaint_id", "at", "seq"],
        unique=False,
    )
    op.alter_column(
        "idempotency_keys",
        "response_body",
        existing_type=postgresql.JSONB(astext_type=sa.Text()),
        type_=sa.JSON(),
        existing_nullable=True,
    )
    op.alter_column(
        "idempotency_keys",
        "response_headers",
        existing_type=postgresql.JSONB(astext_type=sa.Text()),
        type_=sa.JSON(),
        existing_nullable=True,
    )

    sla = sa.table(
        "sla_policies",
        sa.column("id", sa.Uuid()),
        sa.column("severity", sa.String()),
        sa.column("first_response_hours", sa.Integer()),
        sa.column("resolution_hours", sa.Integer()),
        sa.column("version", sa.Integer()),
        sa.column("created_by", sa.String()),
        sa.column("updated_by", sa.String()),
    )
    op.bulk_insert(
        sla,
        [
            {
                "id": uuid.uuid5(uuid.NAMESPACE_URL, f"ams:sla:{severity}"),
                "severity": severity,
                "first_response_hours": first,
                "resolution_hours": resolution,
                "version": 1,
                "created_by": "migration",
                "updated_by": "migration",
            }
            for severity, first, resolution in DEFAULT_SLA
        ],
    )


def downgrade() -> None:
    op.alter_column(
        "idempotency_keys",
        "response_headers",
        existing_type=sa.JSON(),
        type_=postgresql.JSONB(astext_type=sa.Text()),
        existing_nullable=True,
    )
    op.alter_column(
        "idempotency_keys",
        "response_body",
        existing_type=sa.JSON(),
        type_=postgresql.JSONB(astext_type=sa.Text()),
        existing_nullable=True,
    )
    op.drop_index("ix_complaint_transitions_complaint_id_at", table_name="complaint_transitions")
    op.drop_index("ix_complaint_transitions_client_id_at", table_name="complaint_transitions")
    op.drop_table("complaint_transitions")
    op.drop_index(
        "ix_interactions_open_next_step_due_at",
        table_name="interactions",
        postgresql_where=sa.text("next_step_done IS false"),
    )
    op.drop_index("ix_interactions_manager_id_occurred_at", table_name="interactions")
    op.drop_index("ix_interactions_created_at_id", table_name="interactions")
    op.drop_index("ix_interactions_client_id_occurred_at", table_name="interactions")
    op.drop_table("interactions")
    op.drop_index(
        "ix_complaints_unresolved",
        table_name="complaints",
        postgresql_where=sa.text("status NOT IN ('resolved', 'closed')"),
    )
    op.drop_index("ix_complaints_created_at_id", table_name="complaints")
    op.drop_index("ix_complaints_client_id_received_at", table_name="complaints")
    op.drop_index("ix_complaints_assignee_id", table_name="complaints")
    op.drop_table("complaints")
    op.drop_index(
        "uq_sla_policies_severity_segment",
        table_name="sla_policies",
        postgresql_nulls_not_distinct=True,
    )
    op.drop_table("sla_policies")
