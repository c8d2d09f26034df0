"""The rule engine: set-based evaluation of every enabled rule, in one transaction.

A run (1) takes a transaction-scoped advisory lock, so replicas never evaluate at the
same time; (2) builds two temporary fact tables (clients, quotas) once; (3) inserts each
rule's matches into ``rule_matches`` with one INSERT … SELECT per rule; (4) with a few
set-based statements, raises flags for new matches (the partial unique index makes a
duplicate impossible), reopens snoozed flags whose date has passed and whose condition
still holds, resolves flags whose condition is gone (``resolved_by: rule_run``), writes
their history and the health points of the clients that changed. Nothing loops over
rows in Python. A simulation does (2)–(3) inside a savepoint that is rolled back.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from sqlalchemy import (
    Numeric,
    String,
    column,
    func,
    insert,
    select,
    table,
    text,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.core.errors import Conflict, FieldError, Unprocessable
from app.quotas.models import Quota
from app.quotas.repository import achievement_statement, quota_columns
from app.rules.catalogue import CATALOGUE, NegativeSentiment, Params, Rule
from app.rules.models import Rule as RuleRow
from app.rules.models import RuleRun

LOCK_KEY = 0x616D7372  # "amsr": one advisory lock for rule runs
# Health score (0-100): 100 minus these points per open or acknowledged flag of the
# client (snoozed and resolved flags do not count), never below 0.
SEVERITY_POINTS = {"critical": 40, "high": 25, "medium": 10, "low": 5}


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


async def _open_complaints(conn: AsyncConnection, as_of: datetime) -> None:
    now = (await conn.execute(text("SELECT now()"))).scalar_one()
    await conn.execute(text(_OPEN_NOW if as_of >= now else _OPEN_THEN), {"as_of": as_of})
    await conn.execute(text("CREATE INDEX ON rule_open_complaints (client_id)"))


async def _prepare_facts(
    conn: AsyncConnection, configs: list[RuleConfig], as_of: datetime, time_zone: str
) -> None:
    # ON COMMIT DROP cleans up after a run; a caller that runs twice in one transaction
    # (tests, a simulation followed by a run) needs the leftovers gone first.
    await conn.execute(
        text(
            "DROP TABLE IF EXISTS rule_client_facts, rule_quota_facts, rule_matches,"
            " rule_changed_clients, rule_open_complaints"
        )
    )
    await _open_complaints(conn, as_of)
    window = 3
    for config in configs:
        if config.rule is NegativeSentiment and isinstance(config.params, NegativeSentiment.P):
            window = config.params.window
    await conn.execute(
        text(
            "CREATE TEMP TABLE rule_client_facts ON COMMIT DROP AS"
            " SELECT c.id AS client_id, c.segment, c.currency, c.renewal_date, c.created_at,"
            " li.last_interaction_at, coalesce(li.recent_count, 0) AS recent_count,"
            " coalesce(li.recent_negative, 0) AS recent_negative,"
            " coalesce(oc.open_complaints, 0) AS open_complaints,"
            " coalesce(oc.open_critical, 0) AS open_critical"
            " FROM clients c"
            " LEFT JOIN LATERAL (SELECT max(r.occurred_at) AS last_interaction_at,"
            " count(*) AS recent_count,"
            " count(*) FILTER (WHERE r.sentiment = 'negative') AS recent_negative"
            " FROM (SELECT i.occurred_at, i.sentiment FROM interactions i"
            " WHERE i.client_id = c.id AND i.occurred_at <= :as_of"
            " ORDER BY i.occurred_at DESC LIMIT :window) r) li ON true"
            " LEFT JOIN (SELECT o.client_id, count(*) AS open_complaints,"
            " count(*) FILTER (WHERE o.severity = 'critical') AS open_critical"
            " FROM rule_open_complaints o GROUP BY o.client_id) oc ON oc.client_id = c.id"
            " WHERE c.archived_at IS NULL AND c.lifecycle_stage IN ('onboarding', 'active')"
        ),
        {"as_of": as_of, "window": window},
    )
    await conn.execute(text("CREATE UNIQUE INDEX ON rule_client_facts (client_id)"))
    await conn.execute(text("ANALYZE rule_client_facts"))
    await conn.execute(
        text(
            "CREATE TEMP TABLE rule_quota_facts (quota_id uuid PRIMARY KEY, manager_id uuid,"
            " metric text, period_start timestamptz, period_end timestamptz, target numeric,"
            " achieved numeric, missing_rate text) ON COMMIT DROP"
        )
    )
    quotas = select(*quota_columns()).where(Quota.period_start <= as_of).subquery("quotas")
    achieved = achievement_statement(quotas, quotas.c.target_currency, as_of, time_zone).subquery(
        "achieved"
    )
    facts = table(
        "rule_quota_facts",
        column("quota_id", UUID),
        column("manager_id", UUID),
        column("metric", String),
        column("period_start"),
        column("period_end"),
        column("target", Numeric),
        column("achieved", Numeric),
        column("missing_rate", String),
    )
    await conn.execute(
        insert(facts).from_select(
            [c.name for c in facts.columns],
            select(
                achieved.c.id,
                achieved.c.manager_id,
                achieved.c.metric,
                achieved.c.period_start,
                achieved.c.period_end,
                func.coalesce(achieved.c.target_amount, achieved.c.target_count),
                achieved.c.achieved,
                achieved.c.missing_rate,
            ),
        )
    )


async def _match(
    conn: AsyncConnection,
    configs: list[RuleConfig],
    as_of: datetime,
    today: date,
    outcome: RunOutcome,
) -> list[str]:
    """Fill ``rule_matches`` with every enabled rule's findings; return the rule keys."""
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
    await conn.execute(text("CREATE INDEX ON rule_matches (rule_key, subject_id)"))
    await conn.execute(text("ANALYZE rule_matches"))
    return evaluated


_APPLY_REOPEN = """
WITH due AS (
    SELECT f.id FROM flags f JOIN rule_matches m
      ON m.rule_key = f.rule_key AND m.subject_id = f.subject_id
    WHERE f.status = 'snoozed' AND f.snoozed_until <= :as_of FOR UPDATE OF f),
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
    SELECT f.id, f.status AS old_status FROM flags f
    WHERE f.status <> 'resolved' AND f.rule_key = ANY(CAST(:rule_keys AS text[]))
      AND NOT EXISTS (SELECT 1 FROM rule_matches m
                      WHERE m.rule_key = f.rule_key AND m.subject_id = f.subject_id)
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
           :run_id, 'condition no longer holds'
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

_APPLY_RAISE = """
WITH raised AS (
    INSERT INTO flags (id, rule_key, rule_version, subject_type, subject_id, client_id,
                       quota_id, manager_id, severity, status, evidence, raised_at,
                       raised_by_run_id, version, created_at, updated_at, created_by,
                       updated_by)
    SELECT gen_random_uuid(), m.rule_key, m.rule_version, m.subject_type, m.subject_id,
           m.client_id, m.quota_id, m.manager_id, m.severity, 'open', m.evidence, :as_of,
           :run_id, 1, now(), now(), 'rule_run', 'rule_run'
    FROM rule_matches m
    WHERE NOT EXISTS (SELECT 1 FROM flags f WHERE f.rule_key = m.rule_key
                      AND f.subject_id = m.subject_id AND f.status <> 'resolved')
    ON CONFLICT (rule_key, subject_id) WHERE status <> 'resolved' DO NOTHING
    RETURNING id, client_id, rule_key),
events AS (
    INSERT INTO flag_events (id, flag_id, client_id, from_status, to_status, at, actor, run_id)
    SELECT gen_random_uuid(), id, client_id, NULL, 'open', :as_of, 'rule_run', :run_id
    FROM raised),
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

_HEALTH_POINTS = """
INSERT INTO client_health_history (client_id, run_id, at, score)
SELECT c.client_id, :run_id, :as_of, s.score
FROM (SELECT DISTINCT client_id FROM rule_changed_clients) c
CROSS JOIN LATERAL (
    SELECT greatest(0, 100 - coalesce(sum(CASE f.severity WHEN 'critical' THEN 40
        WHEN 'high' THEN 25 WHEN 'medium' THEN 10 ELSE 5 END), 0))::int AS score
    FROM flags f WHERE f.client_id = c.client_id AND f.status IN ('open', 'acknowledged')) s
WHERE s.score IS DISTINCT FROM coalesce((
    SELECT h.score FROM client_health_history h WHERE h.client_id = c.client_id
    ORDER BY h.at DESC, h.run_id DESC LIMIT 1), 100)
"""


async def _apply(
    conn: AsyncConnection,
    run_id: uuid.UUID,
    as_of: datetime,
    evaluated: list[str],
    outcome: RunOutcome,
    actor: str,
    roles: list[str],
    request_id: str | None,
) -> None:
    await conn.execute(
        text("CREATE TEMP TABLE rule_changed_clients (client_id uuid) ON COMMIT DROP")
    )
    binds = {
        "as_of": as_of,
        "run_id": run_id,
        "rule_keys": evaluated,
        "actor": actor,
        "roles": roles,
        "request_id": request_id,
    }
    for name, sql in (
        ("reopened", _APPLY_REOPEN),
        ("resolved", _APPLY_RESOLVE),
        ("raised", _APPLY_RAISE),
    ):
        for key, count in (await conn.execute(text(sql), binds)).all():
            outcome.per_rule.setdefault(key, {})[name] = int(count)
    for counts in outcome.per_rule.values():
        counts.setdefault("raised", 0)
        counts.setdefault("resolved", 0)
        counts.setdefault("reopened", 0)
        counts["still_open"] = counts.get("matched", 0) - counts["raised"]
    await conn.execute(text(_HEALTH_POINTS), binds)


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
    session's transaction.

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
    await conn.execute(text(f"SET LOCAL statement_timeout = {int(statement_timeout_ms)}"))
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
    session.add(run)
    await session.flush()
    await _prepare_facts(conn, configs, as_of, time_zone)
    evaluated = await _match(conn, configs, as_of, _today(as_of, time_zone), outcome)
    await _apply(conn, run.id, as_of, evaluated, outcome, actor, roles or [], request_id)
    run.raised = outcome.total("raised")
    run.resolved = outcome.total("resolved")
    run.reopened = outcome.total("reopened")
    run.still_open = outcome.total("still_open")
    run.per_rule = outcome.per_rule
    run.finished_at = datetime.now(UTC)
    run.duration_ms = round((time.perf_counter() - clock) * 1000)
    await session.flush()
    return run


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
        await conn.execute(text(f"SET LOCAL statement_timeout = {int(statement_timeout_ms)}"))
        await _prepare_facts(conn, configs, as_of, time_zone)
        evaluated = await _match(conn, configs, as_of, _today(as_of, time_zone), outcome)
        open_flag = (
            "EXISTS (SELECT 1 FROM flags f WHERE f.rule_key = m.rule_key"
            " AND f.subject_id = m.subject_id AND f.status <> 'resolved')"
        )
        for key, new in (
            await conn.execute(
                text(
                    f"SELECT rule_key, count(*) FILTER (WHERE NOT {open_flag})"
                    " FROM rule_matches m GROUP BY rule_key"
                )
            )
        ).all():
            outcome.per_rule[key]["would_raise"] = int(new)
        for key, gone in (
            await conn.execute(
                text(
                    "SELECT f.rule_key, count(*) FROM flags f WHERE f.status <> 'resolved'"
                    " AND f.rule_key = ANY(CAST(:keys AS text[])) AND NOT EXISTS (SELECT 1"
                    " FROM rule_matches m WHERE m.rule_key = f.rule_key"
                    " AND m.subject_id = f.subject_id) GROUP BY f.rule_key"
                ),
                {"keys": evaluated},
            )
        ).all():
            outcome.per_rule[key]["would_resolve"] = int(gone)
        matches = (
            await conn.execute(
                text(
                    f"SELECT m.*, {open_flag} AS already_open FROM rule_matches m"
                    " ORDER BY m.rule_key, m.subject_id LIMIT :limit"
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
