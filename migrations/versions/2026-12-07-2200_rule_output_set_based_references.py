"""What a rule run writes in bulk checks its references once per statement.

A run that raises a flag for a quarter of a million clients (the first run over a
million) wrote about 1.8 million row-level foreign-key checks: one trigger call and one
locked parent row each, about 5 µs apiece, 10 of the run's 26 s (``bench/rules.py``).
This migration:

* stores no ``flag_events`` row for a raise any more: the flag itself records it
  (``raised_at``, ``raised_by_run_id``), and the history and the timeline read it from
  there; the stored raise events (``from_status`` NULL) are deleted;
* replaces the foreign keys of ``flags`` (``client_id``, ``raised_by_run_id``,
  ``rule_key``) and of ``client_health_history`` (``client_id``, ``run_id``) by the same
  rule held with triggers: after each INSERT statement one anti join over the rows it
  wrote (``check_references``), on the parents a BEFORE DELETE / UPDATE OF key row
  trigger that refuses while a row refers to them (``refuse_if_referenced``), and
  BEFORE UPDATE row triggers that keep those columns as written. Violations raise
  SQLSTATE 23503 with the old constraint's name, as the foreign keys did. A DELETE (or
  key UPDATE) statement on a parent first reads the one row of ``rule_write_epoch``
  FOR SHARE (a BEFORE statement trigger, so before it locks any row); a run updates
  that row when it starts writing, so the delete waits for the run's rows and sees
  them (a client cannot go while a run writes a flag for it), and a delete in a
  REPEATABLE READ or SERIALIZABLE transaction whose snapshot predates a run's writes
  fails with 40001 instead of missing them (the foreign keys' crosscheck did the
  same). Managers and quotas, whose rows a run's own foreign keys lock, wait the same
  way, so their deletes cannot deadlock with a run.
  A TRUNCATE of a parent that leaves rows referring to it is refused (AFTER TRUNCATE,
  so truncating parents and children together still works).
  ``flags.manager_id`` and ``flags.quota_id`` keep their foreign keys (most flags have
  neither, and a NULL is not checked).

Revision ID: 0012_rule_refs
Revises: 0011_rules_perf
Create Date: 2026-12-07 22:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_rule_refs"
down_revision: str | None = "0011_rules_perf"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


CHECK_REFERENCES = """
CREATE FUNCTION check_references() RETURNS trigger
LANGUAGE plpgsql AS $$
-- AFTER INSERT ... REFERENCING NEW TABLE AS written FOR EACH STATEMENT.
-- TG_ARGV: groups of (column, parent table, parent key, constraint name).
DECLARE
    i int := 0;
    missing text;
BEGIN
    WHILE i < TG_NARGS LOOP
        EXECUTE format('SELECT CAST(w.%1$I AS text) FROM written w WHERE w.%1$I IS NOT NULL'
                       ' AND NOT EXISTS (SELECT 1 FROM %2$I p WHERE p.%3$I = w.%1$I) LIMIT 1',
                       TG_ARGV[i], TG_ARGV[i + 1], TG_ARGV[i + 2])
            INTO missing;
        IF missing IS NOT NULL THEN
            RAISE EXCEPTION 'insert or update on table "%" violates foreign key constraint "%"',
                    TG_TABLE_NAME, TG_ARGV[i + 3]
                USING ERRCODE = 'foreign_key_violation', CONSTRAINT = TG_ARGV[i + 3],
                      TABLE = TG_TABLE_NAME,
                      DETAIL = format('Key (%s)=(%s) is not present in table "%s".',
                                      TG_ARGV[i], missing, TG_ARGV[i + 1]);
        END IF;
        i := i + 4;
    END LOOP;
    RETURN NULL;
END;
$$;
"""

WAIT_FOR_RULE_WRITES = """
CREATE FUNCTION wait_for_rule_writes() RETURNS trigger
LANGUAGE plpgsql AS $$
-- BEFORE DELETE / UPDATE OF the key FOR EACH STATEMENT of a parent: a run holds this
-- row locked (updated) while it writes; waiting here, before any row is locked, lets
-- the row checks see its rows and cannot deadlock with it.
BEGIN
    PERFORM 1 FROM rule_write_epoch FOR SHARE;
    RETURN NULL;
END;
$$;
"""

REFUSE_IF_REFERENCED = """
CREATE FUNCTION refuse_if_referenced() RETURNS trigger
LANGUAGE plpgsql AS $$
-- BEFORE DELETE, or BEFORE UPDATE OF the key, FOR EACH ROW of a parent.
-- TG_ARGV: the parent's key column, then groups of (child table, column, constraint name).
DECLARE
    i int := 1;
    referenced boolean;
BEGIN
    WHILE i < TG_NARGS LOOP
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I c WHERE c.%I = ($1).%I)',
                       TG_ARGV[i], TG_ARGV[i + 1], TG_ARGV[0])
            INTO referenced USING OLD;
        IF referenced THEN
            RAISE EXCEPTION 'update or delete on table "%" violates foreign key constraint "%"'
                            ' on table "%"', TG_TABLE_NAME, TG_ARGV[i + 2], TG_ARGV[i]
                USING ERRCODE = 'foreign_key_violation', CONSTRAINT = TG_ARGV[i + 2],
                      TABLE = TG_ARGV[i];
        END IF;
        i := i + 3;
    END LOOP;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END;
$$;
"""

REFUSE_ORPHANS = """
CREATE FUNCTION refuse_orphans() RETURNS trigger
LANGUAGE plpgsql AS $$
-- AFTER TRUNCATE FOR EACH STATEMENT of a parent (every table of the statement is empty
-- by then). TG_ARGV: groups of (child table, column, constraint name).
DECLARE
    i int := 0;
    referenced boolean;
BEGIN
    WHILE i < TG_NARGS LOOP
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I c WHERE c.%I IS NOT NULL)',
                       TG_ARGV[i], TG_ARGV[i + 1])
            INTO referenced;
        IF referenced THEN
            RAISE EXCEPTION 'cannot truncate table "%": table "%" refers to it (%)',
                            TG_TABLE_NAME, TG_ARGV[i], TG_ARGV[i + 2]
                USING ERRCODE = 'foreign_key_violation', CONSTRAINT = TG_ARGV[i + 2],
                      HINT = 'Truncate table "' || TG_ARGV[i] || '" at the same time.';
        END IF;
        i := i + 3;
    END LOOP;
    RETURN NULL;
END;
$$;
"""

KEEP_REFERENCES = """
CREATE FUNCTION keep_references() RETURNS trigger
LANGUAGE plpgsql AS $$
-- BEFORE UPDATE FOR EACH ROW, WHEN a checked reference would change.
BEGIN
    RAISE EXCEPTION 'the references of table "%" are set when a row is written', TG_TABLE_NAME
        USING ERRCODE = 'foreign_key_violation', TABLE = TG_TABLE_NAME;
END;
$$;
"""

# (child table, column, parent table, parent key, constraint name)
REFERENCES = (
    ("flags", "client_id", "clients", "id", "fk_flags_client_id_clients"),
    ("flags", "raised_by_run_id", "rule_runs", "id", "fk_flags_raised_by_run_id_rule_runs"),
    ("flags", "rule_key", "rules", "key", "fk_flags_rule_key_rules"),
    (
        "client_health_history",
        "client_id",
        "clients",
        "id",
        "fk_client_health_history_client_id_clients",
    ),
    (
        "client_health_history",
        "run_id",
        "rule_runs",
        "id",
        "fk_client_health_history_run_id_rule_runs",
    ),
)


def _args(values: Sequence[str]) -> str:
    return ", ".join(f"'{v}'" for v in values)


def upgrade() -> None:
    # Raises are the flag's own record now.
    op.execute("DELETE FROM flag_events WHERE from_status IS NULL")
    op.create_table(
        "rule_write_epoch",
        sa.Column("id", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("runs", sa.BigInteger(), server_default="0", nullable=False),
        sa.CheckConstraint("id", name=op.f("ck_rule_write_epoch_one_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rule_write_epoch")),
    )
    op.execute("INSERT INTO rule_write_epoch DEFAULT VALUES")
    for child, *_, name in REFERENCES:
        op.drop_constraint(name, child, type_="foreignkey")
    op.execute(CHECK_REFERENCES)
    op.execute(WAIT_FOR_RULE_WRITES)
    op.execute(REFUSE_IF_REFERENCED)
    op.execute(REFUSE_ORPHANS)
    op.execute(KEEP_REFERENCES)
    for child in ("flags", "client_health_history"):
        refs = [r for r in REFERENCES if r[0] == child]
        args = _args(
            [v for _, column, parent, key, name in refs for v in (column, parent, key, name)]
        )
        op.execute(
            f"CREATE TRIGGER {child}_check_references AFTER INSERT ON {child}"
            " REFERENCING NEW TABLE AS written FOR EACH STATEMENT"
            f" EXECUTE FUNCTION check_references({args})"
        )
        changed = " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for _, c, *_ in refs)
        op.execute(
            f"CREATE TRIGGER {child}_keep_references BEFORE UPDATE ON {child} FOR EACH ROW"
            f" WHEN ({changed}) EXECUTE FUNCTION keep_references()"
        )
    for parent, key in (("clients", "id"), ("rule_runs", "id"), ("rules", "key")):
        refs = [r for r in REFERENCES if r[2] == parent]
        args = _args(
            [key, *(v for child, column, _, _, name in refs for v in (child, column, name))]
        )
        op.execute(
            f"CREATE TRIGGER {parent}_wait_for_rule_writes BEFORE DELETE OR UPDATE OF {key}"
            f" ON {parent} FOR EACH STATEMENT EXECUTE FUNCTION wait_for_rule_writes()"
        )
        op.execute(
            f"CREATE TRIGGER {parent}_refuse_if_referenced BEFORE DELETE ON {parent}"
            f" FOR EACH ROW EXECUTE FUNCTION refuse_if_referenced({args})"
        )
        op.execute(
            f"CREATE TRIGGER {parent}_key_refuse_if_referenced BEFORE UPDATE OF {key}"
            f" ON {parent} FOR EACH ROW WHEN (OLD.{key} IS DISTINCT FROM NEW.{key})"
            f" EXECUTE FUNCTION refuse_if_referenced({args})"
        )
        orphans = _args([v for child, column, _, _, name in refs for v in (child, column, name)])
        op.execute(
            f"CREATE TRIGGER {parent}_refuse_orphans AFTER TRUNCATE ON {parent}"
            f" FOR EACH STATEMENT EXECUTE FUNCTION refuse_orphans({orphans})"
        )
    for parent in ("managers", "quotas"):
        op.execute(
            f"CREATE TRIGGER {parent}_wait_for_rule_writes BEFORE DELETE OR UPDATE OF id"
            f" ON {parent} FOR EACH STATEMENT EXECUTE FUNCTION wait_for_rule_writes()"
        )


def downgrade() -> None:
    for parent in ("managers", "quotas"):
        op.execute(f"DROP TRIGGER {parent}_wait_for_rule_writes ON {parent}")
    for parent in ("clients", "rule_runs", "rules"):
        op.execute(f"DROP TRIGGER {parent}_refuse_orphans ON {parent}")
        op.execute(f"DROP TRIGGER {parent}_refuse_if_referenced ON {parent}")
        op.execute(f"DROP TRIGGER {parent}_key_refuse_if_referenced ON {parent}")
        op.execute(f"DROP TRIGGER {parent}_wait_for_rule_writes ON {parent}")
    for child in ("flags", "client_health_history"):
        op.execute(f"DROP TRIGGER {child}_check_references ON {child}")
        op.execute(f"DROP TRIGGER {child}_keep_references ON {child}")
    op.execute("DROP FUNCTION keep_references()")
    op.execute("DROP FUNCTION refuse_if_referenced()")
    op.execute("DROP FUNCTION wait_for_rule_writes()")
    op.execute("DROP FUNCTION refuse_orphans()")
    op.drop_table("rule_write_epoch")
    op.execute("DROP FUNCTION check_references()")
    for child, column, parent, key, name in REFERENCES:
        op.create_foreign_key(name, child, parent, [column], [key], ondelete="RESTRICT")
    # The raise events again, each before its flag's other events (history reads by
    # seq): the stored events move up past room for them, then the raises fill it.
    op.execute(
        "WITH m AS (SELECT coalesce(max(seq), 0) AS top, (SELECT count(*) FROM flags) AS n"
        " FROM flag_events),"
        " moved AS (UPDATE flag_events e SET seq = e.seq + m.top + m.n FROM m RETURNING 1)"
        " INSERT INTO flag_events (id, seq, flag_id, client_id, from_status, to_status, at,"
        " actor, run_id) SELECT gen_random_uuid(),"
        " m.top + row_number() OVER (ORDER BY f.raised_at, f.id), f.id, f.client_id, NULL,"
        " 'open', f.raised_at, 'rule_run', f.raised_by_run_id FROM flags f, m"
    )
    op.execute(
        "SELECT setval(pg_get_serial_sequence('flag_events', 'seq'),"
        " (SELECT coalesce(max(seq), 0) + 1 FROM flag_events), false)"
    )
