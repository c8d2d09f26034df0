"""Create sales, dated FX rates and quotas (no overlap per manager and metric).

Revision ID: 0005_sales_quotas
Revises: 0004_interactions_complaints
Create Date: 2026-11-29 23:04:41.829177+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005_sales_quotas"
down_revision: str | None = "0004_interactions_complaints"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "fx_rates",
        sa.Column("base", sa.CHAR(length=3), nullable=False),
        sa.Column("quote", sa.CHAR(length=3), nullable=False),
        sa.Column("rate", sa.Numeric(precision=24, scale=10), nullable=False),
        sa.Column("valid_on", sa.Date(), nullable=False),
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
        sa.CheckConstraint("base <> quote", name=op.f("ck_fx_rates_distinct_currencies")),
        sa.CheckConstraint("rate > 0", name=op.f("ck_fx_rates_rate_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fx_rates")),
    )
    op.create_index(
        "uq_fx_rates_base_quote_valid_on", "fx_rates", ["base", "quote", "valid_on"], unique=True
    )
    op.create_table(
        "quotas",
        sa.Column("manager_id", sa.Uuid(), nullable=False),
        sa.Column("metric", sa.String(length=20), nullable=False),
        sa.Column("period_label", sa.String(length=20), nullable=True),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("target_amount", sa.Numeric(precision=19, scale=4), nullable=True),
        sa.Column("target_currency", sa.CHAR(length=3), nullable=True),
        sa.Column("target_count", sa.Integer(), nullable=True),
        sa.Column("channel", sa.String(length=20), nullable=True),
        sa.Column(
            "period",
            postgresql.TSTZRANGE(),
            sa.Computed("tstzrange(period_start, period_end, '[)')", persisted=True),
            nullable=True,
        ),
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
        postgresql.ExcludeConstraint(
            (sa.column("manager_id"), "="),
            (sa.column("metric"), "="),
            (sa.column("period"), "&&"),
            using="gist",
            name="ex_quotas_no_overlap",
        ),
        sa.CheckConstraint(
            "(metric = 'sales_amount' AND target_amount > 0 AND target_currency IS NOT NULL "
            "AND target_count IS NULL AND channel IS NULL) OR "
            "(metric = 'interaction_count' AND target_count > 0 AND target_amount IS NULL "
            "AND target_currency IS NULL)",
            name=op.f("ck_quotas_target_fits_metric"),
        ),
        sa.CheckConstraint(
            "channel IS NULL OR channel IN ('email', 'phone', 'video_call', 'meeting', "
            "'presentation', 'screen_share', 'chat', 'event', 'other')",
            name=op.f("ck_quotas_channel"),
        ),
        sa.CheckConstraint(
            "metric IN ('sales_amount', 'interaction_count')", name=op.f("ck_quotas_metric")
        ),
        sa.CheckConstraint("period_end > period_start", name=op.f("ck_quotas_period_order")),
        sa.ForeignKeyConstraint(
            ["manager_id"],
            ["managers.id"],
            name=op.f("fk_quotas_manager_id_managers"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quotas")),
    )
    op.create_index("ix_quotas_created_at_id", "quotas", ["created_at", "id"], unique=False)
    op.create_index("ix_quotas_period_start", "quotas", ["period_start"], unique=False)
    op.create_table(
        "sales",
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("amount", sa.Numeric(precision=19, scale=4), nullable=False),
        sa.Column("currency", sa.CHAR(length=3), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("product", sa.String(length=200), nullable=True),
        sa.Column("external_ref", sa.String(length=100), nullable=True),
        sa.Column("credited_manager_id", sa.Uuid(), nullable=False),
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
        sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name=op.f("ck_sales_currency_iso")),
        sa.CheckConstraint(
            "kind <> 'refund' OR amount <= 0", name=op.f("ck_sales_refund_not_positive")
        ),
        sa.CheckConstraint(
            "kind IN ('new', 'renewal', 'upsell', 'cross_sell', 'refund')",
            name=op.f("ck_sales_kind"),
        ),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_sales_client_id_clients"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["credited_manager_id"],
            ["managers.id"],
            name=op.f("fk_sales_credited_manager_id_managers"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sales")),
        sa.UniqueConstraint("external_ref", name=op.f("uq_sales_external_ref")),
    )
    op.create_index(
        "ix_sales_client_id_closed_at", "sales", ["client_id", "closed_at"], unique=False
    )
    op.create_index("ix_sales_created_at_id", "sales", ["created_at", "id"], unique=False)
    op.create_index(
        "ix_sales_credited_manager_id_closed_at",
        "sales",
        ["credited_manager_id", "closed_at"],
        unique=False,
        postgresql_include=["amount", "currency"],
    )


def downgrade() -> None:
    op.drop_index(
        "ix_sales_credited_manager_id_closed_at",
        table_name="sales",
        postgresql_include=["amount", "currency"],
    )
    op.drop_index("ix_sales_created_at_id", table_name="sales")
    op.drop_index("ix_sales_client_id_closed_at", table_name="sales")
    op.drop_table("sales")
    op.drop_index("ix_quotas_period_start", table_name="quotas")
    op.drop_index("ix_quotas_created_at_id", table_name="quotas")
    op.drop_table("quotas")
    op.drop_index("uq_fx_rates_base_quote_valid_on", table_name="fx_rates")
    op.drop_table("fx_rates")
