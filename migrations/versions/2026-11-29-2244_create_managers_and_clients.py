"""Create managers, clients and idempotency keys, with their constraints and triggers.

Revision ID: 0002_managers_clients
Revises: 0001_extensions
Create Date: 2026-11-29 22:44:54.544384+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_managers_clients"
down_revision: str | None = "0001_extensions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "clients",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("legal_name", sa.String(length=200), nullable=True),
        sa.Column("external_ref", sa.String(length=100), nullable=True),
        sa.Column("industry", sa.String(length=100), nullable=True),
        sa.Column("segment", sa.String(length=20), nullable=False),
        sa.Column("lifecycle_stage", sa.String(length=20), nullable=False),
        sa.Column("parent_id", sa.Uuid(), nullable=True),
        sa.Column("country", sa.CHAR(length=2), nullable=False),
        sa.Column("currency", sa.CHAR(length=3), nullable=False),
        sa.Column("time_zone", sa.String(length=64), nullable=True),
        sa.Column("renewal_date", sa.Date(), nullable=True),
        sa.Column("annual_value_amount", sa.Numeric(precision=19, scale=4), nullable=True),
        sa.Column("annual_value_currency", sa.CHAR(length=3), nullable=True),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True),
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
        sa.CheckConstraint("btrim(name) <> ''", name=op.f("ck_clients_name_not_blank")),
        sa.CheckConstraint("country ~ '^[A-Z]{2}$'", name=op.f("ck_clients_country_iso")),
        sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name=op.f("ck_clients_currency_iso")),
        sa.CheckConstraint(
            "lifecycle_stage IN ('prospect', 'onboarding', 'active', 'churned')",
            name=op.f("ck_clients_lifecycle_stage"),
        ),
        sa.CheckConstraint(
            "segment IN ('strategic', 'key', 'enterprise', 'mid_market', 'small')",
            name=op.f("ck_clients_segment"),
        ),
        sa.CheckConstraint(
            "(annual_value_amount IS NULL) = (annual_value_currency IS NULL)",
            name=op.f("ck_clients_annual_value_complete"),
        ),
        sa.CheckConstraint(
            "parent_id IS NULL OR parent_id <> id", name=op.f("ck_clients_not_own_parent")
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["clients.id"],
            name=op.f("fk_clients_parent_id_clients"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clients")),
        sa.UniqueConstraint("external_ref", name=op.f("uq_clients_external_ref")),
    )
    op.create_index("ix_clients_country", "clients", ["country"], unique=False)
    op.create_index("ix_clients_created_at_id", "clients", ["created_at", "id"], unique=False)
    op.create_index("ix_clients_parent_id", "clients", ["parent_id"], unique=False)
    op.create_index("ix_clients_segment", "clients", ["segment"], unique=False)
    op.create_index("ix_clients_updated_at", "clients", ["updated_at"], unique=False)
    op.create_table(
        "idempotency_keys",
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("response_body", sa.JSON(), nullable=True),
        sa.Column("response_headers", sa.JSON(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("subject", "key", name=op.f("pk_idempotency_keys")),
    )
    op.create_table(
        "managers",
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("full_name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=40), nullable=False),
        sa.Column("reports_to_id", sa.Uuid(), nullable=True),
        sa.Column("time_zone", sa.String(length=64), server_default="UTC", nullable=False),
        sa.Column("region", sa.String(length=100), nullable=True),
        sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("external_ref", sa.String(length=100), nullable=True),
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
        sa.CheckConstraint("btrim(full_name) <> ''", name=op.f("ck_managers_full_name_not_blank")),
        sa.CheckConstraint(
            "role IN ('associate_account_manager', 'account_manager', "
            "'senior_account_manager', 'team_lead', 'sales_manager')",
            name=op.f("ck_managers_role"),
        ),
        sa.CheckConstraint(
            "reports_to_id IS NULL OR reports_to_id <> id", name=op.f("ck_managers_not_own_lead")
        ),
        sa.ForeignKeyConstraint(
            ["reports_to_id"],
            ["managers.id"],
            name=op.f("fk_managers_reports_to_id_managers"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_managers")),
        sa.UniqueConstraint("external_ref", name=op.f("uq_managers_external_ref")),
    )
    op.create_index("ix_managers_created_at_id", "managers", ["created_at", "id"], unique=False)
    op.create_index("ix_managers_reports_to_id", "managers", ["reports_to_id"], unique=False)
    op.create_index(
        "uq_managers_email_lower", "managers", [sa.literal_column("lower(email)")], unique=True
    )

    op.execute(
        "CREATE INDEX ix_clients_search ON clients USING gin "
        "(search_fold(name || ' ' || coalesce(legal_name, '') || ' ' || coalesce(external_ref, ''))"
        " gin_trgm_ops)"
    )
    op.execute(
        "CREATE INDEX ix_managers_search ON managers USING gin "
        "(search_fold(full_name || ' ' || email) gin_trgm_ops)"
    )
    for table, column in (("clients", "parent_id"), ("managers", "reports_to_id")):
        op.execute(
            f"CREATE TRIGGER {table}_no_cycle BEFORE INSERT OR UPDATE OF {column} ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION forbid_hierarchy_cycle('{column}')"
        )


def downgrade() -> None:
    op.drop_index("uq_managers_email_lower", table_name="managers")
    op.drop_index("ix_managers_reports_to_id", table_name="managers")
    op.drop_index("ix_managers_created_at_id", table_name="managers")
    op.drop_table("managers")
    op.drop_table("idempotency_keys")
    op.drop_index("ix_clients_updated_at", table_name="clients")
    op.drop_index("ix_clients_segment", table_name="clients")
    op.drop_index("ix_clients_parent_id", table_name="clients")
    op.drop_index("ix_clients_created_at_id", table_name="clients")
    op.drop_index("ix_clients_country", table_name="clients")
    op.drop_table("clients")
