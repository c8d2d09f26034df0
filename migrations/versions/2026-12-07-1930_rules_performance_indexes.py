"""Indexes for the rule engine: covering indexes (declared in ``app/rules/models.py``)
for the last interactions of every client with their sentiment, the interaction counts
of quotas with their channel, the overdue next steps with their client and the sales
of a time window, all read index-only; the flags' manager and quota indexes made
partial (most flags have neither). The plain interactions indexes with the same keys
are dropped: the covering ones serve their queries.

Revision ID: 0011_rules_perf
Revises: 0010_import_jobs
Create Date: 2026-12-07 19:30:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_rules_perf"
down_revision: str | None = "0010_import_jobs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_interactions_client_id_occurred_at_sentiment",
        "interactions",
        ["client_id", "occurred_at"],
        unique=False,
        postgresql_include=["sentiment"],
    )
    op.create_index(
        "ix_interactions_manager_id_occurred_at_channel",
        "interactions",
        ["manager_id", "occurred_at"],
        unique=False,
        postgresql_include=["channel"],
    )
    op.create_index(
        "ix_interactions_open_next_step_due_at_client_id",
        "interactions",
        ["next_step_due_at"],
        unique=False,
        postgresql_include=["client_id", "id"],
        postgresql_where=sa.text("next_step_done IS false"),
    )
    op.create_index(
        "ix_sales_closed_at_client_id",
        "sales",
        ["closed_at"],
        unique=False,
        postgresql_include=["client_id", "currency", "amount"],
    )
    # Same keys as the covering indexes above: every query they served is served by those.
    op.drop_index("ix_interactions_client_id_occurred_at", table_name="interactions")
    op.drop_index("ix_interactions_manager_id_occurred_at", table_name="interactions")
    op.drop_index("ix_interactions_open_next_step_due_at", table_name="interactions")
    for column in ("manager_id", "quota_id"):
        op.drop_index(f"ix_flags_{column}", table_name="flags")
        op.create_index(
            f"ix_flags_{column}",
            "flags",
            [column],
            unique=False,
            postgresql_where=sa.text(f"{column} IS NOT NULL"),
        )


def downgrade() -> None:
    for column in ("manager_id", "quota_id"):
        op.drop_index(f"ix_flags_{column}", table_name="flags")
        op.create_index(f"ix_flags_{column}", "flags", [column], unique=False)
    op.create_index(
        "ix_interactions_open_next_step_due_at",
        "interactions",
        ["next_step_due_at"],
        unique=False,
        postgresql_where=sa.text("next_step_done IS false"),
    )
    op.create_index(
        "ix_interactions_manager_id_occurred_at", "interactions", ["manager_id", "occurred_at"]
    )
    op.create_index(
        "ix_interactions_client_id_occurred_at", "interactions", ["client_id", "occurred_at"]
    )
    op.drop_index("ix_sales_closed_at_client_id", table_name="sales")
    op.drop_index("ix_interactions_open_next_step_due_at_client_id", table_name="interactions")
    op.drop_index("ix_interactions_manager_id_occurred_at_channel", table_name="interactions")
    op.drop_index("ix_interactions_client_id_occurred_at_sentiment", table_name="interactions")
