"""The exact resolution due instant of a complaint, from its history.

Revision ID: 0007_complaint_due_at
Revises: 0006_rules
Create Date: 2026-11-29 23:20:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007_complaint_due_at"
down_revision: str | None = "0006_rules"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Walks the status history in order: each segment runs the clock when its status is open,
# acknowledged or in_progress. Returns the instant the running time reaches
# target_seconds (in the current segment if still running, or in the past segment where
# a breach happened), or NULL when the clock is stopped and the target is not reached.
# Pure elapsed seconds: a DST change never shifts it.
DUE_AT = """
CREATE FUNCTION complaint_resolution_due_at(p_complaint uuid, p_target_seconds numeric)
RETURNS timestamptz LANGUAGE sql STABLE PARALLEL SAFE AS $$
    WITH seg AS (
        SELECT at AS seg_start, lead(at) OVER (ORDER BY at, seq) AS seg_end,
               to_status IN ('open', 'acknowledged', 'in_progress') AS running, seq
        FROM complaint_transitions WHERE complaint_id = p_complaint),
    cum AS (
        SELECT seg_start, seg_end, running,
               CASE WHEN running THEN extract(epoch FROM seg_end - seg_start) ELSE 0 END
                   AS secs,
               coalesce(sum(CASE WHEN running THEN extract(epoch FROM seg_end - seg_start)
                                 ELSE 0 END)
                        OVER (ORDER BY seg_start, seq
                              ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS before
        FROM seg)
    SELECT seg_start + make_interval(secs => p_target_seconds - before)
    FROM cum
    WHERE running AND before < p_target_seconds
      AND (seg_end IS NULL OR before + secs >= p_target_seconds)
    ORDER BY seg_start
    LIMIT 1
$$;
"""


def upgrade() -> None:
    op.execute(DUE_AT)


def downgrade() -> None:
    op.execute("DROP FUNCTION complaint_resolution_due_at(uuid, numeric)")
