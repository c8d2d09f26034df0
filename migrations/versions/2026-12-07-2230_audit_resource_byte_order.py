"""``audit_events.resource`` and ``resource_id`` compare in byte order (collation "C").

They are table names and ids, looked up by equality and never sorted for people. Their
index takes one entry per bulk-written record (a rule run's flags, an import's rows),
and comparing under the database's locale (``C.UTF-8`` through libc here) made that
index a third of the cost of an audit row (``bench/rules.py``). Changing only the
collation keeps the table as it is; the index is rebuilt.

Revision ID: 0013_audit_byte_order
Revises: 0012_rule_refs
Create Date: 2026-12-07 22:30:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_audit_byte_order"
down_revision: str | None = "0012_rule_refs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.alter_column("audit_events", "resource", type_=sa.String(50, collation="C"))
    op.alter_column("audit_events", "resource_id", type_=sa.String(100, collation="C"))


def downgrade() -> None:
    op.alter_column("audit_events", "resource", type_=sa.String(50))
    op.alter_column("audit_events", "resource_id", type_=sa.String(100))
