"""Extensions, the search folding function and the hierarchy cycle guard.

Revision ID: 0001_extensions
Revises:
Create Date: 2026-11-29 23:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0001_extensions"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# unaccent, then NFD with combining marks (U+0300-036F), Hebrew points (U+0591-05C7) and
# Arabic harakat (U+0610-061A, U+064B-065F, U+0670, U+06D6-06ED) removed, then lower-case
# and Greek final sigma folded. IMMUTABLE so trigram indexes can be built on it.
SEARCH_FOLD = r"""
CREATE FUNCTION search_fold(value text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
RETURN translate(
    lower(
        regexp_replace(
            normalize(public.unaccent('public.unaccent'::regdictionary, value), NFD),
            '[\u0300-\u036f\u0591-\u05c7\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed]',
            '', 'g')),
    'ς', 'σ');
"""

# Generic guard for self-referencing hierarchies (clients.parent_id, managers.reports_to_id):
# TG_ARGV[0] is the parent column. Serialised per table with an advisory lock so two
# concurrent re-parentings cannot together form a cycle.
NO_CYCLE = r"""
CREATE FUNCTION forbid_hierarchy_cycle() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    parent uuid;
    found boolean;
BEGIN
    EXECUTE format('SELECT ($1).%I', TG_ARGV[0]) INTO parent USING NEW;
    IF parent IS NULL THEN
        RETURN NEW;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext(TG_TABLE_NAME || '.hierarchy'));
    EXECUTE format(
        'WITH RECURSIVE up(id) AS (
             SELECT $1
             UNION
             SELECT t.%1$I FROM %2$I.%3$I t JOIN up ON t.id = up.id WHERE t.%1$I IS NOT NULL)
         SELECT EXISTS (SELECT 1 FROM up WHERE id = $2)',
        TG_ARGV[0], TG_TABLE_SCHEMA, TG_TABLE_NAME)
    INTO found USING parent, NEW.id;
    IF found THEN
        RAISE EXCEPTION 'hierarchy cycle in %', TG_TABLE_NAME
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'ck_' || TG_TABLE_NAME || '_no_cycle';
    END IF;
    RETURN NEW;
END;
$$;
"""


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS unaccent WITH SCHEMA public")
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public")
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist WITH SCHEMA public")
    op.execute(SEARCH_FOLD)
    op.execute(NO_CYCLE)


def downgrade() -> None:
    op.execute("DROP FUNCTION forbid_hierarchy_cycle()")
    op.execute("DROP FUNCTION search_fold(text)")
    # Extensions stay: other databases objects may use them and dropping needs superuser.
