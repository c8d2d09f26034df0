"""Create assignments (exclusion constraints on tstzrange periods) and absences.

Revision ID: 0003_assignments
Revises: 0002_managers_clients
Create Date: 2026-11-29 22:52:23.633242+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003_assignments"
down_revision: str | None = "0002_managers_clients"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# A new assignment needs an active manager and a client that is not archived. The rows
# are read FOR SHARE so a concurrent deactivation or archive waits for this insert.
PARTIES_USABLE = """
CREATE FUNCTION assignment_parties_usable() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM managers WHERE id = NEW.manager_id AND active FOR SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'manager % is not active', NEW.manager_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'ck_assignments_manager_active';
    END IF;
    PERFORM 1 FROM clients WHERE id = NEW.client_id AND archived_at IS NULL FOR SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'client % is archived', NEW.client_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'ck_assignments_client_not_archived';
    END IF;
    RETURN NEW;
END;
$$;
"""


def upgrade() -> None:
    op.create_table(
        "absences",
        sa.Column("manager_id", sa.Uuid(), nullable=False),
        sa.Column("cover_manager_id", sa.Uuid(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
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
            "cover_manager_id <> manager_id", name=op.f("ck_absences_cover_is_someone_else")
        ),
        sa.CheckConstraint("ends_at > starts_at", name=op.f("ck_absences_ends_after_start")),
        sa.ForeignKeyConstraint(
            ["cover_manager_id"],
            ["managers.id"],
            name=op.f("fk_absences_cover_manager_id_managers"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["manager_id"],
            ["managers.id"],
            name=op.f("fk_absences_manager_id_managers"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_absences")),
    )
    op.create_index(
        op.f("ix_absences_cover_manager_id"), "absences", ["cover_manager_id"], unique=False
    )
    op.create_index(op.f("ix_absences_manager_id"), "absences", ["manager_id"], unique=False)
    op.create_table(
        "assignments",
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("manager_id", sa.Uuid(), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("absence_id", sa.Uuid(), nullable=True),
        sa.Column(
            "period",
            postgresql.TSTZRANGE(),
            sa.Computed("tstzrange(starts_at, ends_at, '[)')", persisted=True),
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
        # manager_id first, so the book-of-business query can use this index as well.
        postgresql.ExcludeConstraint(
            (sa.column("manager_id"), "="),
            (sa.column("client_id"), "="),
            (sa.column("period"), "&&"),
            where=sa.text("role IN ('primary', 'cover')"),
            using="gist",
            name="ex_assignments_cover_not_primary",
        ),
        postgresql.ExcludeConstraint(
            (sa.column("client_id"), "="),
            (sa.column("period"), "&&"),
            where=sa.text("role = 'cover'"),
            using="gist",
            name="ex_assignments_one_cover",
        ),
        postgresql.ExcludeConstraint(
            (sa.column("client_id"), "="),
            (sa.column("period"), "&&"),
            where=sa.text("role = 'primary'"),
            using="gist",
            name="ex_assignments_one_primary",
        ),
        sa.CheckConstraint(
            "role IN ('primary', 'secondary', 'cover')", name=op.f("ck_assignments_role")
        ),
        sa.CheckConstraint(
            "ends_at IS NULL OR ends_at > starts_at", name=op.f("ck_assignments_ends_after_start")
        ),
        sa.ForeignKeyConstraint(
            ["absence_id"],
            ["absences.id"],
            name=op.f("fk_assignments_absence_id_absences"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_assignments_client_id_clients"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["manager_id"],
            ["managers.id"],
            name=op.f("fk_assignments_manager_id_managers"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assignments")),
    )
    op.create_index(op.f("ix_assignments_absence_id"), "assignments", ["absence_id"], unique=False)
    op.create_index(
        "ix_assignments_client_id_starts_at",
        "assignments",
        ["client_id", "starts_at"],
        unique=False,
    )
    op.create_index(
        "ix_assignments_created_at_id", "assignments", ["created_at", "id"], unique=False
    )
    op.create_index(
        "ix_assignments_manager_id_period",
        "assignments",
        ["manager_id", "period"],
        unique=False,
        postgresql_using="gist",
    )

    op.execute(PARTIES_USABLE)
    op.execute(
        "CREATE TRIGGER assignments_parties_usable BEFORE INSERT ON assignments "
        "FOR EACH ROW EXECUTE FUNCTION assignment_parties_usable()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER assignments_parties_usable ON assignments")
    op.execute("DROP FUNCTION assignment_parties_usable()")
    op.drop_index(
        "ix_assignments_manager_id_period", table_name="assignments", postgresql_using="gist"
    )
    op.drop_index("ix_assignments_created_at_id", table_name="assignments")
    op.drop_index("ix_assignments_client_id_starts_at", table_name="assignments")
    op.drop_index(op.f("ix_assignments_absence_id"), table_name="assignments")
    op.drop_table("assignments")
    op.drop_index(op.f("ix_absences_manager_id"), table_name="absences")
    op.drop_index(op.f("ix_absences_cover_manager_id"), table_name="absences")
    op.drop_table("absences")
