"""The rule engine: set-based evaluation of every enabled rule, in one transaction.

A run (1) takes a transaction-scoped advisory lock, so replicas never evaluate at the
same time; (2) builds two temporary fact tables (clients, quotas) once; (3) inserts each
rule's matches into ``rule_matches`` with one INSERT … SELECT per rule; (4) stages what
changes in ``rule_changes`` with one FULL JOIN of the matches and the unresolved flags:
new matches to raise, flags whose condition is gone to resolve (``resolved_by:
rule_run``), snoozed flags whose date has passed and whose condition still holds to
reopen; (5) only if there is any, writes the run's row, the flags, their history (a
raise is the flag's own record; resolves and reopens get an event), audit rows and the
health points of the clients whose score moved, after ``MARK_WRITES``. A run that changes
nothing writes its ``rule_runs`` row and nothing else. Nothing loops over rows in
Python. A simulation does (2)–(4) inside a savepoint that is rolled back.

Speed (DESIGN §6, ``bench/rules.py``): the client facts probe a covering index once per
client in id order; FX rates are looked up once per currency pair (and day), never per
sale; the apply statements read only staged temp tables, so no plan can scan the table
it is writing once per row.
"""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from sqlalchemy import (
    select,
    text,
)
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.core.errors import Conflict, FieldError, Unprocessable
from app.core.ids import ordered_uuid_sql
from app.rules.catalogue import CATALOGUE, NegativeSentiment, Params, Rule, fx_lookup
from app.rules.models import Rule as RuleRow
from app.rules.models import RuleRun

LOCK_KEY = 0x616D7372  # "amsr": one advisory lock for rule runs
# A run updates the one row of rule_write_epoch, and so holds it locked, while it writes
# flags and health points; deleting a client (or a run, rule, manager or quota) reads it
# FOR SHARE first (trigger wait_for_rule_writes, migration 0012_rule_refs), so the
# per-statement reference checks of what a run writes cannot race a delete.
MARK_WRITES = "UPDATE rule_write_epoch SET runs = runs + 1"
# Health score (0-100): 100 minus these points per open or acknowledged flag of the
# client (snoozed and resolved flags do not count), never below 0.
SEVERITY_POINTS = {"critical": 40, "high": 25, "medium": 10, "low": 5}
# Per sort / hash node of a run's statements (SET LOCAL: this transaction only).
WORK_MEM = "64MB"
# More flag changes than this in one run: their clients' scores are computed in one
# hashed pass over the flags rather than by an index probe per client (see _apply).
BULK_CHANGES = 10_000
# Buffer pool for the run's temporary tables, allocated as used and kept by the
# connection (see _session_settings).
TEMP_BUFFERS = "256MB"


@dataclass
class RuleConfig:
    rule: type[Rule]
    version: int
    severity: str
    enabled: bool
    params: Params


@dataclass
class RunOutcome:
    per_rule: dict[str, dict[str, int]] = field(default_factory=dict)

    def total(self, name: str) -> int:
        return sum(counts.get(name, 0) for counts in self.per_rule.values())


def validate_params(rule: type[Rule], raw: dict[str, Any], prefix: str) -> Params:
    """Validate ``raw`` against the rule's parameter model; a 422 names each parameter."""
    try:
        return rule.params_model.model_validate(raw)
    except ValidationError as exc:
        errors = [
            FieldError(
                field=".".join([prefix, *(str(p) for p in e["loc"])]),
                message=e["msg"],
                type=e["type"],
            )
            for e in exc.errors()
        ]
        raise Unprocessable(
            f"Invalid parameters for rule {rule.key}: " + ", ".join(e.field for e in errors),
            errors=errors,
        ) from exc


async def load_configs(
    session: AsyncSession, overrides: dict[str, dict[str, Any]] | None = None
) -> list[RuleConfig]:
    """The stored configuration of every rule, with simulation ``overrides`` applied."""
    rows = (await session.execute(select(RuleRow).order_by(RuleRow.key))).scalars().all()
    overrides = overrides or {}
    unknown = set(overrides) - set(CATALOGUE)
    if unknown:
        raise Unprocessable.field(
            "body.overrides", f"Unknown rule(s): {', '.join(sorted(unknown))}."
        )
    configs = []
    for row in rows:
        rule = CATALOGUE[row.key]
        override = overrides.get(row.key, {})
        params = {**row.params, **override.get("params", {})}
        configs.append(
            RuleConfig(
                rule=rule,
                version=row.version,
                severity=override.get("severity") or row.severity,
                enabled=override.get("enabled", row.enabled),
                params=validate_params(rule, params, f"body.overrides.{row.key}.params"),
            )
        )
    return configs


def _today(as_of: datetime, time_zone: str) -> date:
    return as_of.astimezone(ZoneInfo(time_zone)).date()


# Complaints unresolved at as_of and whether their resolution target had passed then.
# At (or after) now the row's running totals answer it; for a past as_of the status and
# the due instant come from the transition history (slower, exact).
_OPEN_NOW = """
CREATE TEMP TABLE rule_open_complaints ON COMMIT DROP AS
SELECT co.id AS complaint_id, co.client_id, co.severity, co.received_at,
       x.elapsed > x.target AS breached,
       extract(epoch FROM x.elapsed - x.target) / 3600 AS overdue_hours
FROM complaints co
JOIN clients c ON c.id = co.client_id
LEFT JOIN sla_policies ps ON ps.severity = co.severity AND ps.segment = c.segment
LEFT JOIN sla_policies pd ON pd.severity = co.severity AND pd.segment IS NULL,
LATERAL (SELECT co.active_time + CASE WHEN co.clock_running
             THEN CAST(:as_of AS timestamptz) - co.clock_since ELSE interval '0' END AS elapsed,
         make_interval(hours => coalesce(ps.resolution_hours, pd.resolution_hours)) AS target) x
WHERE co.status NOT IN ('resolved', 'closed') AND co.received_at <= :as_of
"""
_OPEN_THEN = """
CREATE TEMP TABLE rule_open_complaints ON COMMIT DROP AS
SELECT co.id AS complaint_id, co.client_id, co.severity, co.received_at,
       coalesce(d.due_at < :as_of, false) AS breached,
       extract(epoch FROM CAST(:as_of AS timestamptz) - d.due_at) / 3600 AS overdue_hours
FROM complaints co
JOIN clients c ON c.id = co.client_id
LEFT JOIN sla_policies ps ON ps.severity = co.severity AND ps.segment = c.segment
LEFT JOIN sla_policies pd ON pd.severity = co.severity AND pd.segment IS NULL
CROSS JOIN LATERAL (SELECT t.to_status FROM complaint_transitions t
    WHERE t.complaint_id = co.id AND t.at <= :as_of ORDER BY t.at DESC, t.seq DESC LIMIT 1) st
CROSS JOIN LATERAL (SELECT complaint_resolution_due_at(
    co.id, 3600 * coalesce(ps.resolution_hours, pd.resolution_hours)) AS due_at) d
WHERE st.to_status NOT IN ('resolved', 'closed') AND co.received_at <= :as_of
"""

# One row per client the client rules look at. The last ``window`` interactions come
# from one LATERAL probe per client of the covering index on interactions (client_id,
# occurred_at) INCLUDE (sentiment) (an index-only scan); the clients are probed in id
# order, so consecutive probes read neighbouring index pages instead of random ones.
_CLIENT_FACTS = """
CREATE TEMP TABLE rule_client_facts ON COMMIT DROP AS
SELECT c.id AS client_id, c.segment, c.currency, c.renewal_date, c.created_at,
       li.last_interaction_at, coalesce(li.recent_count, 0) AS recent_count,
       coalesce(li.recent_negative, 0) AS recent_negative,
       coalesce(oc.open_complaints, 0) AS open_complaints,
       coalesce(oc.open_critical, 0) AS open_critical
FROM (SELECT id, segment, currency, renewal_date, created_at FROM clients
      WHERE archived_at IS NULL AND lifecycle_stage IN ('onboarding', 'active')
      ORDER BY id) c
LEFT JOIN LATERAL (
    SELECT max(r.occurred_at) AS last_interaction_at, count(*) AS recent_count,
           count(*) FILTER (WHERE r.sentiment = 'negative') AS recent_negative
    FROM (SELECT i.occurred_at, i.sentiment FROM interactions i
          WHERE i.client_id = c.id AND i.occurred_at <= :as_of
          ORDER BY i.occurred_at DESC LIMIT :window) r) li ON true
LEFT JOIN (SELECT o.client_id, count(*) AS open_complaints,
                  count(*) FILTER (WHERE o.severity = 'critical') AS open_critical
           FROM rule_open_complaints o GROUP BY o.client_id) oc ON oc.client_id = c.id
"""

# Every quota started by as_of with its achievement (DESIGN §4; the same figures as
# app.quotas.repository.achievement_statement): sales summed per (quota, currency,
# local date) and priced in the target currency at the latest rate on or before that
# date, looked up once per distinct (currency, date); interaction quotas counted. Both
# read per quota through LATERAL index range scans (covering indexes: no heap visits).
_QUOTA_FACTS = (
    """
CREATE TEMP TABLE rule_quota_facts ON COMMIT DROP AS
WITH q AS MATERIALIZED (
    SELECT id, manager_id, metric, period_start, period_end, channel, target_currency,
           coalesce(target_amount, target_count) AS target,
           least(period_end, CAST(:as_of AS timestamptz)) AS upto
    FROM quotas WHERE period_start <= :as_of),
daily AS MATERIALIZED (
    SELECT q.id AS quota_id, d.currency, d.on_date, q.target_currency AS quote, d.amount
    FROM q CROSS JOIN LATERAL (
        SELECT s.currency, CAST(timezone(:time_zone, s.closed_at) AS date) AS on_date,
               sum(s.amount) AS amount
        FROM sales s
        WHERE s.credited_manager_id = q.manager_id AND s.closed_at >= q.period_start
          AND s.closed_at < q.upto
        GROUP BY 1, 2) d
    WHERE q.metric = 'sales_amount'),
rates AS MATERIALIZED (
    SELECT p.currency, p.quote, p.on_date, fx.rate
    FROM (SELECT DISTINCT currency, quote, on_date FROM daily WHERE currency <> quote) p
    LEFT JOIN LATERAL ("""
    + fx_lookup("p.currency", "p.quote", "p.on_date")
    + """) fx ON true),
priced AS (
    SELECT d.quota_id,
           sum(d.amount * CASE WHEN d.currency = d.quote THEN 1 ELSE r.rate END) AS achieved,
           min(CASE WHEN NOT d.currency = d.quote AND r.rate IS NULL
                    THEN d.currency || '/' || d.quote || ' on or before '
                         || CAST(d.on_date AS text) END) AS missing_rate
    FROM daily d
    LEFT JOIN rates r ON r.currency = d.currency AND r.quote = d.quote
                     AND r.on_date = d.on_date
    GROUP BY d.quota_id)
SELECT q.id AS quota_id, q.manager_id, q.metric, q.period_start, q.period_end, q.target,
       q.target_currency,
       coalesce(p.achieved, n.achieved, 0) AS achieved, p.missing_rate
FROM q
LEFT JOIN priced p ON p.quota_id = q.id
LEFT JOIN LATERAL (
    SELECT count(*) AS achieved FROM interactions i
    WHERE q.metric = 'interaction_count' AND i.manager_id = q.manager_id
      AND i.occurred_at >= q.period_start AND i.occurred_at < q.upto
      AND (q.channel IS NULL OR i.channel = q.channel)) n ON q.metric = 'interaction_count'
"""
)

TEMP_TABLES = (
    "rule_client_facts",
    "rule_quota_facts",
    "rule_matches",
    "rule_changes",
    "rule_changed_clients",
    "rule_scores",
    "rule_open_complaints",
)


async def _open_complaints(conn: AsyncConnection, as_of: datetime) -> None:
    now = (await conn.execute(text("SELECT now()"))).scalar_one()
    await conn.execute(text(_OPEN_NOW if as_of >= now else _OPEN_THEN), {"as_of": as_of})


async def _prepare_facts(
    conn: AsyncConnection, configs: list[RuleConfig], as_of: datetime, time_zone: str
) -> None:
    # ON COMMIT DROP cleans up after a run; a caller that runs twice in one transaction
    # (tests, a simulation followed by a run) needs the leftovers gone first.
    await conn.execute(text(f"DROP TABLE IF EXISTS {', '.join(TEMP_TABLES)}"))
    await _open_complaints(conn, as_of)
    window = 3
    for config in configs:
        if config.rule is NegativeSentiment and isinstance(config.params, NegativeSentiment.P):
            window = config.params.window
    await conn.execute(text(_CLIENT_FACTS), {"as_of": as_of, "window": window})
    await conn.execute(text(_QUOTA_FACTS), {"as_of": as_of, "time_zone": time_zone})
    # Temp tables are never analyzed by autovacuum; without statistics the rules'
    # joins are planned from guesses (hashing the million client facts to join a few
    # thousand complaints). A small sample (3,000 rows) tells sizes and uniqueness,
    # which is what the plans need, in a tenth of the default's time.
    await conn.execute(text("SET LOCAL default_statistics_target = 10"))
    await conn.execute(text("ANALYZE rule_client_facts, rule_quota_facts, rule_open_complaints"))


async def _match(
    conn: AsyncConnection,
    configs: list[RuleConfig],
    as_of: datetime,
    today: date,
    outcome: RunOutcome,
) -> list[str]:
    """Fill ``rule_matches`` with every enabled rule's findings; return their keys."""
    await conn.execute(
        text(
            "CREATE TEMP TABLE rule_matches (rule_key text, rule_version int, severity text,"
            " subject_type text, subject_id uuid, client_id uuid, quota_id uuid,"
            " manager_id uuid, evidence jsonb) ON COMMIT DROP"
        )
    )
    evaluated = []
    for config in configs:
        if not config.enabled:
            continue
        rule = config.rule
        started = time.perf_counter()
        result = await conn.execute(
            text(
                "INSERT INTO rule_matches SELECT CAST(:rule_key AS text),"
                " CAST(:rule_version AS int), CAST(:severity AS text),"
                " CAST(:subject_type AS text), m.subject_id, m.client_id, m.quota_id,"
                " m.manager_id, m.evidence || jsonb_build_object('rule', CAST(:rule_key AS text),"
                " 'rule_version', CAST(:rule_version AS int),"
                " 'as_of', CAST(:as_of AS timestamptz))"
                f" FROM ({rule.sql()}) m"
            ),
            {
                "rule_key": rule.key,
                "rule_version": config.version,
                "severity": config.severity,
                "subject_type": rule.subject_type.value,
                "as_of": as_of,
                "today": today,
                **rule.binds(config.params),
            },
        )
        outcome.per_rule[rule.key] = {
            "matched": result.rowcount or 0,
            "match_ms": round((time.perf_counter() - started) * 1000),
        }
        evaluated.append(rule.key)
    return evaluated


# What a run changes, staged before anything is written: one FULL JOIN of the matches'
# keys with the unresolved flags of the evaluated rules keeps only the differences: a
# match without a flag (raise), a flag without a match (resolve), a snoozed flag whose
# date has passed and whose condition still holds (reopen). A run that changes nothing
# finds this table empty and writes no row. (A FULL JOIN is only ever a hash or merge
# join: no plan can probe the flags once per match; keys only, so it sorts or hashes
# little.)
_CHANGES = """
CREATE TEMP TABLE rule_changes ON COMMIT DROP AS
SELECT CASE WHEN f.id IS NULL THEN 'raise' WHEN m.rule_key IS NULL THEN 'resolve'
            ELSE 'reopen' END AS action,
       coalesce(m.rule_key, f.rule_key) AS rule_key,
       coalesce(m.subject_id, f.subject_id) AS subject_id, f.id AS flag_id
FROM (SELECT rule_key, subject_id FROM rule_matches) m
FULL JOIN (SELECT id, rule_key, subject_id, status, snoozed_until FROM flags
           WHERE status <> 'resolved' AND rule_key = ANY(CAST(:rule_keys AS text[]))) f
  ON f.rule_key = m.rule_key AND f.subject_id = m.subject_id
WHERE f.id IS NULL OR m.rule_key IS NULL
   OR (f.status = 'snoozed' AND f.snoozed_until <= :as_of)
"""

# The apply statements read only the staged changes (and lock the flags they change,
# re-checking their status), never the table they write: a plan made when the rule
# tables were empty (or ANALYZEd as empty) cannot turn into a scan per row.
_APPLY_REOPEN = """
WITH due AS (
    SELECT f.id FROM flags f JOIN rule_changes c ON c.flag_id = f.id
    WHERE c.action = 'reopen' AND f.status = 'snoozed' AND f.snoozed_until <= :as_of
    FOR UPDATE OF f),
reopened AS (
    UPDATE flags f SET status = 'open', snoozed_until = NULL, version = f.version + 1,
        updated_at = now(), updated_by = 'rule_run'
    FROM due WHERE f.id = due.id RETURNING f.id, f.client_id, f.rule_key),
events AS (
    INSERT INTO flag_events (id, flag_id, client_id, from_status, to_status, at, actor, run_id)
    SELECT gen_random_uuid(), id, client_id, 'snoozed', 'open', :as_of, 'rule_run', :run_id
    FROM reopened),
audited AS (
    INSERT INTO audit_events (actor, roles, source, resource, resource_id, action, client_id,
                              changes, request_id)
    SELECT :actor, CAST(:roles AS text[]), 'rule_run', 'flags', id::text, 'update', client_id,
           jsonb_build_object('status', jsonb_build_array('snoozed', 'open')), :request_id
    FROM reopened),
changed AS (INSERT INTO rule_changed_clients SELECT client_id FROM reopened
    WHERE client_id IS NOT NULL)
SELECT rule_key, count(*) FROM reopened GROUP BY rule_key
"""

_APPLY_RESOLVE = """
WITH gone AS (
    SELECT f.id, f.status AS old_status FROM flags f JOIN rule_changes c ON c.flag_id = f.id
    WHERE c.action = 'resolve' AND f.status <> 'resolved'
    FOR UPDATE OF f),
resolved AS (
    UPDATE flags f SET status = 'resolved', resolved_at = :as_of, resolved_by = 'rule_run',
        snoozed_until = NULL, version = f.version + 1, updated_at = now(),
        updated_by = 'rule_run'
    FROM gone WHERE f.id = gone.id RETURNING f.id, f.client_id, f.rule_key, gone.old_status),
events AS (
    INSERT INTO flag_events (id, flag_id, client_id, from_status, to_status, at, actor, run_id,
                             note)
    SELECT gen_random_uuid(), id, client_id, old_status, 'resolved', :as_of, 'rule_run',
           :run_id, CASE WHEN (SELECT r.enabled FROM rules r WHERE r.key = resolved.rule_key)
                    THEN 'condition no longer holds' ELSE 'rule disabled' END
    FROM resolved),
audited AS (
    INSERT INTO audit_events (actor, roles, source, resource, resource_id, action, client_id,
                              changes, request_id)
    SELECT :actor, CAST(:roles AS text[]), 'rule_run', 'flags', id::text, 'update', client_id,
           jsonb_build_object('status', jsonb_build_array(old_status, 'resolved')), :request_id
    FROM resolved),
changed AS (INSERT INTO rule_changed_clients SELECT client_id FROM resolved
    WHERE client_id IS NOT NULL)
SELECT rule_key, count(*) FROM resolved GROUP BY rule_key
"""

# Only runs insert flags, and runs hold the advisory lock from staging to commit, so no
# other unresolved flag can appear for a staged (rule, subject): a plain INSERT (no
# speculative insertion). The partial unique index still guarantees one unresolved
# flag per (rule, subject); a violation would fail the run. New flags get time-ordered
# ids, so they and their audit rows go to the right edge of the id indexes (random ids
# put each on a random page of them).
_APPLY_RAISE = (
    """
WITH raised AS (
    INSERT INTO flags (id, rule_key, rule_version, subject_type, subject_id, client_id,
                       quota_id, manager_id, severity, status, evidence, raised_at,
                       raised_by_run_id, version, created_at, updated_at, created_by,
                       updated_by)
    SELECT """
    + ordered_uuid_sql("row_number() OVER ()", ":id_salt")
    + """, m.rule_key, m.rule_version, m.subject_type, m.subject_id,
           m.client_id, m.quota_id, m.manager_id, m.severity, 'open', m.evidence, :as_of,
           :run_id, 1, now(), now(), 'rule_run', 'rule_run'
    FROM rule_changes c JOIN rule_matches m
      ON m.rule_key = c.rule_key AND m.subject_id = c.subject_id
    WHERE c.action = 'raise'
    RETURNING id, client_id, rule_key),
audited AS (
    INSERT INTO audit_events (actor, roles, source, resource, resource_id, action, client_id,
                              changes, request_id)
    SELECT :actor, CAST(:roles AS text[]), 'rule_run', 'flags', id::text, 'create', client_id,
           jsonb_build_object('status', jsonb_build_array(NULL, 'open'),
                              'rule_key', jsonb_build_array(NULL, rule_key)), :request_id
    FROM raised),
changed AS (INSERT INTO rule_changed_clients SELECT client_id FROM raised
    WHERE client_id IS NOT NULL)
SELECT rule_key, count(*) FROM raised GROUP BY rule_key
"""
)

# The raises of subjects deleted while the run evaluated (see _apply_pruned_if_refused).
_PRUNE_VANISHED = """
DELETE FROM rule_changes c USING rule_matches m
WHERE c.action = 'raise' AND m.rule_key = c.rule_key AND m.subject_id = c.subject_id
  AND ((m.client_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM clients x WHERE x.id = m.client_id))
    OR (m.quota_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM quotas x WHERE x.id = m.quota_id))
    OR (m.manager_id IS NOT NULL
        AND NOT EXISTS (SELECT 1 FROM managers x WHERE x.id = m.manager_id)))
"""

# The changed clients' new scores next to their last recorded ones, staged; then only
# the scores that moved are inserted (client_health_history is not read by the INSERT).
_SCORES = """
CREATE TEMP TABLE rule_scores ON COMMIT DROP AS
SELECT s.client_id, s.score, coalesce(p.score, 100) AS previous
FROM (SELECT c.client_id,
             greatest(0, 100 - coalesce(sum(CASE f.severity WHEN 'critical' THEN 40
                 WHEN 'high' THEN 25 WHEN 'medium' THEN 10 WHEN 'low' THEN 5 END), 0))::int
                 AS score
      FROM (SELECT DISTINCT client_id FROM rule_changed_clients) c
      LEFT JOIN flags f ON f.client_id = c.client_id AND f.status IN ('open', 'acknowledged')
      GROUP BY c.client_id) s
LEFT JOIN LATERAL (SELECT h.score FROM client_health_history h WHERE h.client_id = s.client_id
                   ORDER BY h.at DESC, h.run_id DESC LIMIT 1) p ON true
"""

_HEALTH_POINTS = """
INSERT INTO client_health_history (client_id, run_id, at, score)
SELECT client_id, :run_id, :as_of, score FROM rule_scores WHERE score <> previous
"""


async def _stage_changes(
    conn: AsyncConnection, as_of: datetime, evaluated: list[str]
) -> dict[str, int]:
    """Stage what the run would change in ``rule_changes``; return its counts per action."""
    await conn.execute(text(_CHANGES), {"as_of": as_of, "rule_keys": evaluated})
    rows = (
        await conn.execute(text("SELECT action, count(*) FROM rule_changes GROUP BY action"))
    ).all()
    counts = {str(action): int(n) for action, n in rows}
    if counts:
        await conn.execute(text("ANALYZE rule_changes"))
    return counts


async def _apply(conn: AsyncConnection, binds: dict[str, Any], outcome: RunOutcome) -> None:
    """Write the staged changes: reopen, resolve (each with its flag_events and audit
    rows), raise (flags and audit rows), then a health point for every client whose
    score moved. ``binds``: as_of, run_id, id_salt, actor, roles, request_id. The caller
    has run ``MARK_WRITES``."""
    await conn.execute(
        text("CREATE TEMP TABLE rule_changed_clients (client_id uuid) ON COMMIT DROP")
    )
    changes = 0
    for name, sql in (
        ("reopened", _APPLY_REOPEN),
        ("resolved", _APPLY_RESOLVE),
        ("raised", _APPLY_RAISE),
    ):
        for key, count in (await conn.execute(text(sql), binds)).all():
            outcome.per_rule.setdefault(key, {})[name] = int(count)
            changes += int(count)
    # The flags just written have no statistics yet, so the planner sees a few rows per
    # client and probes the flags by index once per changed client: right for a few
    # hundred, 2.5 s for 200,000 (the first run at a million clients), where one hashed
    # pass over the open flags takes a tenth of that.
    bulk = changes > BULK_CHANGES
    if bulk:
        await conn.execute(text("SET LOCAL enable_nestloop = off"))
    await conn.execute(text(_SCORES))
    if bulk:
        await conn.execute(text("SET LOCAL enable_nestloop = on"))
    await conn.execute(text(_HEALTH_POINTS), binds)


async def _apply_pruned_if_refused(
    conn: AsyncConnection, binds: dict[str, Any], outcome: RunOutcome
) -> None:
    """``_apply`` in a savepoint; when a reference is refused (23503: a client, quota or
    manager deleted while the run evaluated), drop the raises of the subjects that went
    and apply again. No delete can commit from here on (the caller has run
    ``MARK_WRITES``), so the second time holds; checking every raise up front cost 0.5 s
    at a million clients for a case that is rare."""
    savepoint = await conn.begin_nested()
    try:
        await _apply(conn, binds, outcome)
    except IntegrityError as exc:
        await savepoint.rollback()
        if getattr(getattr(exc.orig, "__cause__", None), "sqlstate", None) != "23503":
            raise
        await conn.execute(text(_PRUNE_VANISHED))
        await _apply(conn, binds, outcome)
    else:
        await savepoint.commit()


def _finish_counts(outcome: RunOutcome) -> None:
    for counts in outcome.per_rule.values():
        counts.setdefault("matched", 0)  # a disabled rule whose flags resolved
        counts.setdefault("raised", 0)
        counts.setdefault("resolved", 0)
        counts.setdefault("reopened", 0)
        counts["still_open"] = counts.get("matched", 0) - counts["raised"]


async def run_rules(
    session: AsyncSession,
    *,
    as_of: datetime | None,
    time_zone: str,
    trigger: str,
    actor: str,
    wait: bool,
    statement_timeout_ms: int,
    roles: list[str] | None = None,
    request_id: str | None = None,
) -> RuleRun:
    """Evaluate every enabled rule at ``as_of`` (default now) and record the run, in the
    session's transaction. A run that changes no flag writes only its ``rule_runs`` row.

    Raises Conflict when another run holds the lock and ``wait`` is false."""
    started_at = datetime.now(UTC)
    clock = time.perf_counter()
    as_of = as_of or started_at
    conn = await session.connection()
    if wait:
        await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK_KEY})
    else:
        got = (
            await conn.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": LOCK_KEY})
        ).scalar_one()
        if not got:
            raise Conflict("A rule run is already in progress; try again when it has finished.")
    await _session_settings(conn, statement_timeout_ms)
    configs = await load_configs(session)
    outcome = RunOutcome()
    run = RuleRun(
        id=uuid.uuid4(),
        as_of=as_of,
        started_at=started_at,
        finished_at=started_at,
        duration_ms=0,
        trigger=trigger,
        actor=actor,
        raised=0,
        still_open=0,
        resolved=0,
        reopened=0,
        per_rule={},
    )
    await _prepare_facts(conn, configs, as_of, time_zone)
    await _match(conn, configs, as_of, _today(as_of, time_zone), outcome)
    # Every rule's open flags take part: a disabled rule has no matches, so its flags
    # resolve (and stop counting against health) instead of staying open forever.
    if await _stage_changes(conn, as_of, [config.rule.key for config in configs]):
        # The flags and events written next refer to the run: its row goes first.
        session.add(run)
        await session.flush()
        await conn.execute(text(MARK_WRITES))
        binds = {
            "as_of": as_of,
            "run_id": run.id,
            "id_salt": random.randrange(4096),
            "actor": actor,
            "roles": roles or [],
            "request_id": request_id,
        }
        await _apply_pruned_if_refused(conn, binds, outcome)
    _finish_counts(outcome)
    run.raised = outcome.total("raised")
    run.resolved = outcome.total("resolved")
    run.reopened = outcome.total("reopened")
    run.still_open = outcome.total("still_open")
    run.per_rule = outcome.per_rule
    run.finished_at = datetime.now(UTC)
    run.duration_ms = round((time.perf_counter() - clock) * 1000)
    session.add(run)
    await session.flush()
    return run


async def _session_settings(conn: AsyncConnection, statement_timeout_ms: int) -> None:
    """Transaction-scoped settings of a run: its statement timeout, and enough memory
    for the sorts and hashes over a million clients to stay in memory (the server
    default, 4 MB, spills them to disk). The temporary tables get a buffer pool of
    TEMP_BUFFERS, so the rules' scans of the fact tables are not reads from files (the
    default, 8 MB, holds a tenth of the client facts of a million clients); Postgres
    allows that only before the connection's first temporary table, hence the guard (a
    connection that had one keeps its pool)."""
    await conn.execute(text(f"SET LOCAL statement_timeout = {int(statement_timeout_ms)}"))
    await conn.execute(text(f"SET LOCAL work_mem = '{WORK_MEM}'"))
    # The run's joins pair a big set with a small one, or two unsorted ones; merge joins
    # (both sides sorted, text keys compared under the collation) measured slower than
    # hashing wherever the planner picked them (staging the changes: 1.3 s against
    # 0.8 s at a million clients).
    await conn.execute(text("SET LOCAL enable_mergejoin = off"))
    # The guard misses a connection whose temporary tables were rolled back (a simulation,
    # a failed run): Postgres still refuses then, so try in a savepoint and keep the
    # connection's current pool when refused.
    try:
        async with conn.begin_nested():
            await conn.execute(
                text(
                    "SELECT set_config('temp_buffers', :size, true) WHERE pg_my_temp_schema() = 0"
                ),
                {"size": TEMP_BUFFERS},
            )
    except DBAPIError:
        pass


@dataclass
class Simulation:
    as_of: datetime
    per_rule: dict[str, dict[str, int]]
    matches: list[Any]


async def simulate(
    session: AsyncSession,
    *,
    as_of: datetime | None,
    time_zone: str,
    overrides: dict[str, dict[str, Any]],
    limit: int,
    statement_timeout_ms: int,
) -> Simulation:
    """What a run with ``overrides`` at ``as_of`` would flag; everything it creates lives
    in a savepoint that is rolled back, so nothing is written."""
    as_of = as_of or datetime.now(UTC)
    configs = await load_configs(session, overrides)
    outcome = RunOutcome()
    nested = await session.begin_nested()
    try:
        conn = await session.connection()
        await _session_settings(conn, statement_timeout_ms)
        await _prepare_facts(conn, configs, as_of, time_zone)
        await _match(conn, configs, as_of, _today(as_of, time_zone), outcome)
        await conn.execute(
            text(_CHANGES),
            {"as_of": as_of, "rule_keys": [config.rule.key for config in configs]},
        )
        for key, would_raise, would_resolve in (
            await conn.execute(
                text(
                    "SELECT rule_key, count(*) FILTER (WHERE action = 'raise'),"
                    " count(*) FILTER (WHERE action = 'resolve')"
                    " FROM rule_changes GROUP BY rule_key"
                )
            )
        ).all():
            counts = outcome.per_rule.setdefault(key, {"matched": 0})
            counts["would_raise"] = int(would_raise)
            counts["would_resolve"] = int(would_resolve)
        matches = (
            await conn.execute(
                text(
                    "SELECT m.*, EXISTS (SELECT 1 FROM flags f WHERE f.rule_key = m.rule_key"
                    " AND f.subject_id = m.subject_id AND f.status <> 'resolved') AS already_open"
                    " FROM rule_matches m ORDER BY m.rule_key, m.subject_id LIMIT :limit"
                ),
                {"limit": limit},
            )
        ).all()
    finally:
        await nested.rollback()
    for counts in outcome.per_rule.values():
        counts.setdefault("would_raise", 0)
        counts.setdefault("would_resolve", 0)
    return Simulation(as_of=as_of, per_rule=outcome.per_rule, matches=list(matches))
