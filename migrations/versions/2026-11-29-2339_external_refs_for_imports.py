"""external_ref (unique when given) on assignments, complaints, interactions and quotas, so
re-importing a file updates instead of duplicating.

Revision ID: 0009_import_refs
Revises: 0008_audit_events
Create Date: 2026-11-29 23:39:49.640062+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_import_refs"
down_revision: str | None = "0008_audit_events"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("assignments", sa.Column("external_ref", sa.String(length=100), nullable=True))
    op.create_unique_constraint(
        op.f("uq_assignments_external_ref"), "assignments", ["external_ref"]
    )
    op.add_column("complaints", sa.Column("external_ref", sa.String(length=100), nullable=True))
    op.create_unique_constraint(op.f("uq_complaints_external_ref"), "complaints", ["external_ref"])
    op.add_column("interactions", sa.Column("external_ref", sa.String(length=100), nullable=True))
    op.create_unique_constraint(
        op.f("uq_interactions_external_ref"), "interactions", ["external_ref"]
    )
    op.add_column("quotas", sa.Column("external_ref", sa.String(length=100), nullable=True))
    op.create_unique_constraint(op.f("uq_quotas_external_ref"), "quotas", ["external_ref"])


def downgrade() -> None:
    op.drop_constraint(op.f("uq_quotas_external_ref"), "quotas", type_="unique")
    op.drop_column("quotas", "external_ref")
    op.drop_constraint(op.f("uq_interactions_external_ref"), "interactions", type_="unique")
    op.drop_column("interactions", "external_ref")
    op.drop_constraint(op.f("uq_complaints_external_ref"), "complaints", type_="unique")
    op.drop_column("complaints", "external_ref")
    op.drop_constraint(op.f("uq_assignments_external_ref"), "assignments", type_="unique")
    op.drop_column("assignments", "external_ref")
