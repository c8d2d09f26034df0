"""Time a full rule evaluation (``app.rules.engine.run_rules``) on millions of rows.

Run by hand: ``.venv/bin/python bench/rules.py [--scale 1.0] [--scales 0.25,0.5,1.0]``
(default: the three scales 0.25, 0.5 and 1.0; ``--keep`` keeps the databases,
``--reuse`` reuses a kept database of the same scale, migrating it to head and emptying
only the rule tables; ``--explain-all`` prints the plans at every scale, not only the
largest; ``--no-explain`` prints none).

For each scale it (re)creates the database ``ams_bench_rules_<scale>`` (``1_0``,
``0_25``...) on ``DATABASE_URL`` (default ``postgresql://postgres@127.0.0.1:5432/
postgres``), migrates it to head, loads it with server-side ``INSERT … SELECT
generate_series`` (one transaction; the non-partial indexes that back no constraint,
and the primary keys nothing references, of the six big tables are dropped first and
re-created from their own ``pg_get_indexdef`` / ``pg_get_constraintdef`` afterwards,
then checked to be identical; triggers and foreign-key checks are off for the load with
``session_replication_role = replica``: every reference is drawn from rows just
inserted), VACUUM ANALYZEs every table but the empty ones the rule engine writes (see
``vacuum_sql``; ``--analyze-empty-rule-tables`` includes them) and CHECKPOINTs, then

* runs a full evaluation through ``run_rules`` (as the API and the scheduler do: one
  ``sessionmaker.begin()`` transaction, ``statement_timeout_ms=0``) at ``as_of`` = now +
  10 minutes (as a scheduled run's, now: the engine reads a past ``as_of``'s open
  complaints from their history instead; both runs must take the same path), and
  prints its wall time (with the commit), the engine's own ``duration_ms``, the three
  phases (fact tables, matching, apply: the engine's private ``_prepare_facts`` /
  ``_match`` / ``_apply`` wrapped with a timer while it runs), every SQL statement's
  time and CPU time of the server process (``/proc``: less noisy than wall time on a
  shared machine; parallel workers not included), each rule's ``match_ms``, matches and
  raised flags, the WAL written meanwhile (by the whole server; its biggest record
  kinds where ``pg_walinspect`` is available) and the rows each rule table got
  inserted / updated / deleted (``pg_stat_user_tables``);
* runs it again at the same ``as_of`` (nothing changes) and prints the same, checking
  that it wrote no row but its ``rule_runs`` row (row counts and ``n_tup_ins`` /
  ``n_tup_upd`` / ``n_tup_del`` before and after);
* at the largest scale, replays the re-run's statements in a transaction that is rolled
  back, each under ``EXPLAIN (ANALYZE, BUFFERS)``, and prints the plans of the client
  facts, the quota facts, the staging of the changes, the two slowest rules and the
  slowest apply statement; at the smallest scale, replays the first run's apply
  statements the same way, twice, with the rule tables emptied inside the transaction
  (TRUNCATE): once never analyzed (as after the migration), once ANALYZEd as empty, and
  prints the plans of the two slowest of each;

and finally a table of the scales (rows, load, full run, re-run, CPU) to show the growth.

The data at scale 1.0 (everything scales linearly except the FX rates), reproducible
(``setseed``) relative to the anchor (now, to the second, at load time; kept in the
table ``bench_meta``):

* 2,000 managers; 1,000,000 clients created over five years (the newest 1 % in the
  last 100 days, onboarding, without history), segments 2 % strategic, 8 % key, 20 %
  enterprise, 30 % mid-market, 40 % small; 88 % active or onboarding, 4 % prospects,
  3 % churned (half of them archived); five currencies (EUR, USD, GBP, HUF, JPY);
  80 % with a renewal date spread from 20 days ago to a year ahead;
* about 1.4 million assignments: a primary for 99 % of clients (25 % after a handover;
  2 % of primaries, and those of churned clients, ended: unassigned now), a cover for
  10 % (2 % running now), a secondary for 10 %;
* 10,000,000 interactions over two years in time order (denser towards now: the age
  is 730 days × u², so 20 % are in the last 30 days), older clients get more (client
  drawn as ``N × u^1.3``), with the client's manager; sentiment 10 % negative overall,
  clustered: 5 % of clients are "unhappy" (45 % negative), the rest 8 %; a quarter have
  a next step due 1-21 days later, 2 % of the old ones never done (15 % for unhappy
  clients);
* 200,000 complaints over two years (40 % on unhappy clients) with their transition
  history; older than two weeks mostly closed (87 %), recent ones in every status;
  ``active_time``, ``clock_since``, ``clock_running``, ``first_responded_at`` and
  ``resolved_at`` are what the service's transitions would leave;
* 1,000,000 sales over two years in time order, on 80 % of clients, 90 % in the
  client's currency, 5 % refunds (negative), credited to the client's manager;
* FX rates for the ten pairs of the five currencies, daily over 800 days (8,010 rows);
* 5,000 quotas of three-month periods (months aligned; the running one started 45-75
  days ago): sales quotas (EUR targets) for the last ended period for every manager,
  the one before for half, the running one for three quarters; interaction-count
  quotas for the running period for a quarter (half of them for phone only); targets
  are 0.55-1.2 × (ended) or 0.6-1.5 × (running) the manager's average quarter of the
  last year, so some are missed, some behind pace.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from alembic import command
from sqlalchemy import event, text
from sqlalchemy.engine import make_url

import app.rules.engine as rule_engine
from app.config import Environment, Settings
from app.core.db import create_engine, create_sessionmaker
from app.core.health import alembic_config
from app.core.observability import configure_logging
from app.rules.catalogue import CATALOGUE
from app.rules.engine import run_rules

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_SCALES = (0.25, 0.5, 1.0)
AS_OF_AHEAD = timedelta(minutes=10)  # both runs finish before as_of is in the past
# What a run writes (audit_events where the schema has it).
RULE_TABLES = ("flags", "flag_events", "client_health_history", "audit_events", "rule_runs")
# Big tables whose secondary indexes (and unreferenced primary keys) are built after
# the load instead of row by row.
BULK_TABLES = (
    "clients",
    "assignments",
    "interactions",
    "complaints",
    "complaint_transitions",
    "sales",
)
CURRENCIES = (
    # code, country, units per EUR (approximate), minor unit, share of clients
    ("EUR", "DE", 1.0, 2, 0.35),
    ("USD", "US", 1.08, 2, 0.25),
    ("GBP", "GB", 0.86, 2, 0.15),
    ("HUF", "HU", 395.0, 2, 0.15),
    ("JPY", "JP", 162.0, 0, 0.10),
)


# --------------------------------------------------------------------------- sizes


@dataclass(frozen=True)
class Sizes:
    scale: float

    def _n(self, base: int) -> int:
        return max(1, round(base * self.scale))

    @property
    def managers(self) -> int:
        return max(8, self._n(2_000))

    @property
    def clients(self) -> int:
        return self._n(1_000_000)

    @property
    def old_clients(self) -> int:
        """Clients 1..old_clients have history; the newest 1 % have none."""
        return round(self.clients * 0.99)

    @property
    def interactions(self) -> int:
        return self._n(10_000_000)

    @property
    def complaints(self) -> int:
        return self._n(200_000)

    @property
    def sales(self) -> int:
        return self._n(1_000_000)


def label_of(scale: float) -> str:
    return str(float(scale)).replace(".", "_")  # 1_0, 0_25


def database_of(scale: float) -> str:
    return f"ams_bench_rules_{label_of(scale)}"


# ---------------------------------------------------------------------------- load SQL
# Every statement is a function of the anchor literal ``t`` (timestamptz) and the sizes.


def currencies_sql() -> str:
    rows = ", ".join(
        f"('{code}', '{country}', {factor}, {minor}, {share}, {i})"
        for i, (code, country, factor, minor, share) in enumerate(CURRENCIES)
    )
    return (
        "CREATE TEMP TABLE bench_currencies AS SELECT code, country, factor::numeric AS factor,"
        " minor, share, o,"
        " coalesce(sum(share) OVER (ORDER BY o ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING),"
        " 0) AS lo, sum(share) OVER (ORDER BY o) AS hi"
        f" FROM (VALUES {rows}) AS v(code, country, factor, minor, share, o)"
    )


def managers_sql(t: str, s: Sizes) -> str:
    return f"""
INSERT INTO managers (id, email, full_name, role, region, time_zone, active, version,
                      created_at, updated_at, created_by, updated_by)
SELECT gen_random_uuid(), 'rules-bench-' || g || '@example.com', 'Rules Bench Manager ' || g,
       (ARRAY['associate_account_manager', 'account_manager', 'senior_account_manager',
              'team_lead'])[1 + g % 4],
       (ARRAY['EMEA', 'APAC', 'AMER'])[1 + g % 3], 'UTC', true, 1,
       {t} - interval '6 years' + g * interval '1 second',
       {t} - interval '6 years' + g * interval '1 second', 'bench', 'bench'
FROM generate_series(1, {s.managers}) AS g
"""


BENCH_MANAGERS_SQL = """
CREATE TEMP TABLE bench_managers AS
SELECT row_number() OVER (ORDER BY created_at, id) - 1 AS n, id FROM managers
"""


def clients_sql(t: str, s: Sizes) -> str:
    return f"""
INSERT INTO clients (id, name, segment, lifecycle_stage, country, currency, renewal_date,
                     annual_value_amount, annual_value_currency, archived_at, version,
                     created_at, updated_at, created_by, updated_by)
SELECT gen_random_uuid(), 'Rules Bench Client ' || r.g,
       CASE WHEN r_seg < 0.02 THEN 'strategic' WHEN r_seg < 0.10 THEN 'key'
            WHEN r_seg < 0.30 THEN 'enterprise' WHEN r_seg < 0.60 THEN 'mid_market'
            ELSE 'small' END,
       stage, cur.country, cur.code,
       CASE WHEN r_ren < 0.8 THEN CAST({t} AS date) - 20 + floor(r_ren / 0.8 * 385)::int END,
       round(CAST(1000 + 999000 * power(r_val, 3) AS numeric) * cur.factor,
             cur.minor), cur.code,
       CASE WHEN stage = 'churned' AND r_arch < 0.5
            THEN date_trunc('second', {t} - r_arch * interval '200 days') END,
       1, created_at, created_at, 'bench', 'bench'
FROM (
    SELECT g, r_seg, r_cur, r_ren, r_val, r_arch,
           CASE WHEN g > {s.old_clients} THEN 'onboarding' WHEN r_stage < 0.04 THEN 'prospect'
                WHEN r_stage < 0.07 THEN 'churned' WHEN r_stage < 0.12 THEN 'onboarding'
                ELSE 'active' END AS stage,
           date_trunc('second', CASE
               WHEN g <= {s.old_clients}
               THEN {t} - interval '5 years' + g::float8 / {s.old_clients} * interval '3 years'
               ELSE {t} - interval '100 days'
                    + (g - {s.old_clients})::float8 / greatest({s.clients - s.old_clients}, 1)
                      * interval '99 days' END) AS created_at
    FROM (SELECT g, random() AS r_seg, random() AS r_stage, random() AS r_cur,
                 random() AS r_ren, random() AS r_val, random() AS r_arch
          FROM generate_series(1, {s.clients}) AS g) AS raw
) AS r
JOIN bench_currencies cur ON r.r_cur >= cur.lo AND r.r_cur < cur.hi
ORDER BY r.g
"""


def bench_clients_sql(s: Sizes) -> str:
    m = s.managers
    return f"""
CREATE TEMP TABLE bench_clients AS
SELECT c.n, c.id, c.lifecycle_stage, c.currency, c.created_at, c.archived_at,
       c.n % 20 = 8 AS unhappy,
       m0.id AS manager_id, m1.id AS cover_id, m2.id AS previous_id, m3.id AS secondary_id,
       random() AS r_fate, random() AS r_hand, random() AS r_h, random() AS r_cover,
       random() AS r_sec
FROM (SELECT row_number() OVER (ORDER BY created_at, id) AS n, id, lifecycle_stage, currency,
             created_at, archived_at FROM clients) AS c
JOIN bench_managers m0 ON m0.n = (c.n * 7919) % {m}
JOIN bench_managers m1 ON m1.n = (c.n * 7919 + 1) % {m}
JOIN bench_managers m2 ON m2.n = (c.n * 7919 + 2) % {m}
JOIN bench_managers m3 ON m3.n = (c.n * 7919 + 3) % {m}
ORDER BY c.n
"""


# Each client's primary history: an optional earlier stint (handover), then the current
# one, ended for 2 % (and for churned clients); no history at all for 1 %.
def stints_sql(t: str, s: Sizes) -> str:
    return f"""
CREATE TEMP TABLE bench_stints AS
SELECT c.*, h.handover, h.h1,
       CASE WHEN h.handover THEN h.h1 ELSE c.created_at END AS since,
       c.r_fate < 0.01 AS never,
       c.lifecycle_stage = 'churned' OR (c.r_fate >= 0.01 AND c.r_fate < 0.03) AS ended
FROM bench_clients c
CROSS JOIN LATERAL (
    SELECT c.r_hand < 0.25 AND c.n <= {s.old_clients} AS handover,
           date_trunc('second', c.created_at + ({t} - c.created_at) * (0.2 + 0.5 * c.r_h)) AS h1
) AS h
"""


def assignments_sql(t: str) -> str:
    return f"""
INSERT INTO assignments (id, client_id, manager_id, role, starts_at, ends_at, reason, version,
                         created_at, updated_at, created_by, updated_by)
SELECT gen_random_uuid(), client_id, manager_id, role, starts_at, ends_at, reason, 1,
       starts_at, coalesce(ends_at, starts_at), 'bench', 'bench'
FROM (
    SELECT id AS client_id, previous_id AS manager_id, 'primary' AS role,
           created_at AS starts_at, h1 AS ends_at, 'onboarding' AS reason
    FROM bench_stints WHERE handover AND NOT never
    UNION ALL
    SELECT id, manager_id, 'primary', since,
           CASE WHEN ended THEN date_trunc('second',
                since + (coalesce(archived_at, {t}) - since) * 0.9) END,
           CASE WHEN handover THEN 'handover' ELSE 'onboarding' END
    FROM bench_stints WHERE NOT never
    UNION ALL
    -- Covers: 2 % running now, 8 % two weeks somewhere in the current stint.
    SELECT id, cover_id, 'cover',
           CASE WHEN r_cover < 0.02 THEN date_trunc('second', {t} - interval '5 days')
                ELSE date_trunc('second', since + ({t} - since) * (r_cover - 0.02) * 10) END,
           CASE WHEN r_cover < 0.02 THEN date_trunc('second', {t} + interval '9 days')
                ELSE date_trunc('second', since + ({t} - since) * (r_cover - 0.02) * 10)
                     + interval '14 days' END,
           'absence'
    FROM bench_stints WHERE r_cover < 0.10
    UNION ALL
    SELECT id, secondary_id, 'secondary', since, NULL, 'support'
    FROM bench_stints WHERE r_sec < 0.10 AND NOT never
) AS a
"""


def interactions_sql(t: str, s: Sizes) -> str:
    return f"""
INSERT INTO interactions (id, client_id, manager_id, channel, direction, occurred_at,
                          duration_minutes, subject, sentiment, decisions,
                          next_step_description, next_step_due_at, next_step_done, version,
                          created_at, updated_at, created_by, updated_by)
SELECT gen_random_uuid(), c.id, c.manager_id, x.channel, x.direction, x.occurred_at,
       CASE WHEN x.channel <> 'email' THEN 15 + (x.g % 76)::int END,
       'Bench interaction ' || x.g,
       CASE WHEN x.r_s < p.neg THEN 'negative' WHEN x.r_s < p.neg + 0.30 THEN 'positive'
            WHEN x.r_s < p.neg + 0.75 THEN 'neutral' END,
       ARRAY[]::text[],
       CASE WHEN x.has_step THEN 'Send the follow-up' END,
       CASE WHEN x.has_step THEN x.due END,
       CASE WHEN x.has_step THEN
           CASE WHEN x.due >= {t} THEN false
                WHEN x.due < {t} - interval '7 days' THEN x.r_done >= p.never_done
                ELSE x.r_done >= 0.5 END END,
       1, x.occurred_at, x.occurred_at, 'bench', 'bench'
FROM (
    SELECT y.*, y.occurred_at + (1 + floor(y.r_due * 21)) * interval '1 day' AS due
    FROM (
        SELECT g, 1 + floor(power(random(), 1.3) * {s.old_clients})::bigint AS n,
               date_trunc('second', {t}
                   - power(1 - g::float8 / {s.interactions}, 2) * interval '730 days'
                   - random() * interval '1 hour') AS occurred_at,
               CASE WHEN r_ch < 0.40 THEN 'email' WHEN r_ch < 0.70 THEN 'phone'
                    WHEN r_ch < 0.85 THEN 'video_call' WHEN r_ch < 0.95 THEN 'meeting'
                    ELSE 'other' END AS channel,
               CASE WHEN g % 2 = 0 THEN 'inbound' ELSE 'outbound' END AS direction,
               r_s, r_ns < 0.25 AS has_step, r_due, r_done
        FROM (SELECT g, random() AS r_ch, random() AS r_s, random() AS r_ns,
                     random() AS r_due, random() AS r_done
              FROM generate_series(1, {s.interactions}) AS g) AS raw
    ) AS y
) AS x
JOIN bench_clients c ON c.n = x.n
CROSS JOIN LATERAL (
    SELECT CASE WHEN c.unhappy THEN 0.45 ELSE 0.08 END AS neg,
           CASE WHEN c.unhappy THEN 0.15 ELSE 0.02 END AS never_done
) AS p
"""


# As bench/complaints_breached.py (transitions a service would have written), in time
# order, on old clients, 40 % of them on the unhappy ones (n % 20 = 8).
def complaints_plan_sql(t: str, s: Sizes) -> str:
    unhappy = max(1, s.old_clients // 20)
    return f"""
CREATE TEMP TABLE bench_plan AS
WITH r AS (
    SELECT g, random() AS r_sev, random() AS r_status, random() AS r_fr, random() AS r_ip,
           random() AS r_wait, random() AS r_res, random() AS r_close, random() AS r_cat,
           CASE WHEN random() < 0.4 THEN 20 * floor(random() * {unhappy})::bigint + 8
                ELSE 1 + floor(random() * {s.old_clients})::bigint END AS n,
           date_trunc('second', {t} - (1 - g::float8 / {s.complaints}) * interval '730 days'
                                    - random() * interval '1 hour') AS received_at
    FROM generate_series(1, {s.complaints}) AS g
),
st AS (
    SELECT r.*,
           CASE WHEN received_at > {t} - interval '14 days' THEN
                    CASE WHEN r_status < 0.15 THEN 'open'
                         WHEN r_status < 0.30 THEN 'acknowledged'
                         WHEN r_status < 0.60 THEN 'in_progress'
                         WHEN r_status < 0.75 THEN 'waiting_on_client'
                         WHEN r_status < 0.90 THEN 'resolved'
                         ELSE 'closed' END
                ELSE
                    CASE WHEN r_status < 0.005 THEN 'open'
                         WHEN r_status < 0.010 THEN 'acknowledged'
                         WHEN r_status < 0.030 THEN 'in_progress'
                         WHEN r_status < 0.050 THEN 'waiting_on_client'
                         WHEN r_status < 0.130 THEN 'resolved'
                         ELSE 'closed' END
           END AS status,
           least(received_at + r_fr * r_fr * interval '30 hours', {t}) AS t_ack
    FROM r
),
tt AS (SELECT st.*, least(t_ack + r_ip * interval '12 hours', {t}) AS t_ip FROM st),
u AS (
    SELECT tt.*,
           least(t_ip + r_wait * interval '72 hours', {t}) AS t_wait,
           least(t_ip + (0.05 + 10 * r_res * r_res) * interval '24 hours', {t}) AS t_res
    FROM tt
)
SELECT gen_random_uuid() AS id, u.g, u.status, u.received_at, u.t_ack, u.t_ip, u.t_wait,
       u.t_res, least(u.t_res + u.r_close * interval '7 days', {t}) AS t_close,
       c.id AS client_id, c.manager_id AS assignee_id,
       CASE WHEN r_sev < 0.05 THEN 'critical' WHEN r_sev < 0.25 THEN 'high'
            WHEN r_sev < 0.70 THEN 'medium' ELSE 'low' END AS severity,
       (ARRAY['product', 'service', 'billing', 'delivery', 'communication', 'other'])
           [1 + floor(r_cat * 6)::int] AS category
FROM u JOIN bench_clients c ON c.n = least(u.n, {s.old_clients})
ORDER BY u.g
"""


COMPLAINTS_SQL = """
INSERT INTO complaints (id, client_id, title, description, category, severity, channel,
                        received_at, assignee_id, status, resolution, first_responded_at,
                        resolved_at, active_time, clock_since, clock_running, version,
                        created_at, updated_at, created_by, updated_by)
SELECT id, client_id, 'Bench complaint ' || g, 'Generated by the benchmark.', category,
       severity, (ARRAY['email', 'phone', 'chat', 'meeting'])[1 + g % 4], received_at,
       assignee_id, status,
       CASE WHEN status IN ('resolved', 'closed') THEN 'Resolved by the benchmark.' END,
       CASE WHEN status <> 'open' THEN t_ack END,
       CASE WHEN status IN ('resolved', 'closed') THEN t_res END,
       CASE status WHEN 'open' THEN interval '0'
                   WHEN 'acknowledged' THEN t_ack - received_at
                   WHEN 'in_progress' THEN t_ip - received_at
                   WHEN 'waiting_on_client' THEN t_wait - received_at
                   ELSE t_res - received_at END,
       CASE status WHEN 'open' THEN received_at
                   WHEN 'acknowledged' THEN t_ack
                   WHEN 'in_progress' THEN t_ip
                   WHEN 'waiting_on_client' THEN t_wait
                   WHEN 'resolved' THEN t_res
                   ELSE t_close END,
       status IN ('open', 'acknowledged', 'in_progress'),
       CASE status WHEN 'open' THEN 1 WHEN 'acknowledged' THEN 2 WHEN 'in_progress' THEN 3
                   WHEN 'waiting_on_client' THEN 4 WHEN 'resolved' THEN 4 ELSE 5 END,
       received_at, received_at, 'bench', 'bench'
FROM bench_plan
ORDER BY g
"""

TRANSITIONS_SQL = """
INSERT INTO complaint_transitions (id, complaint_id, client_id, from_status, to_status, at,
                                   actor)
SELECT gen_random_uuid(), id, client_id, from_status, to_status, at, 'bench'
FROM (
    SELECT id, client_id, 1 AS step, NULL AS from_status, 'open' AS to_status,
           received_at AS at
    FROM bench_plan
    UNION ALL
    SELECT id, client_id, 2, 'open', 'acknowledged', t_ack FROM bench_plan
    WHERE status <> 'open'
    UNION ALL
    SELECT id, client_id, 3, 'acknowledged', 'in_progress', t_ip FROM bench_plan
    WHERE status NOT IN ('open', 'acknowledged')
    UNION ALL
    SELECT id, client_id, 4, 'in_progress', 'waiting_on_client', t_wait FROM bench_plan
    WHERE status = 'waiting_on_client'
    UNION ALL
    SELECT id, client_id, 4, 'in_progress', 'resolved', t_res FROM bench_plan
    WHERE status IN ('resolved', 'closed')
    UNION ALL
    SELECT id, client_id, 5, 'resolved', 'closed', t_close FROM bench_plan
    WHERE status = 'closed'
) AS rows
ORDER BY at, id, step
"""


def sales_sql(t: str, s: Sizes) -> str:
    return f"""
INSERT INTO sales (id, client_id, amount, currency, closed_at, kind, product,
                   credited_manager_id, version, created_at, updated_at, created_by,
                   updated_by)
SELECT gen_random_uuid(), c.id,
       CASE WHEN x.kind = 'refund' THEN -round(x.base * f.factor * 0.5, f.minor)
            ELSE round(x.base * f.factor, f.minor) END,
       f.code, x.closed_at, x.kind, 'Product ' || (1 + x.g % 20), c.manager_id, 1,
       x.closed_at, x.closed_at, 'bench', 'bench'
FROM (
    SELECT g, CASE WHEN n % 5 = 0 THEN n - 1 ELSE n END AS n, r_cur,
           CAST(100 + 15000 * power(r_amt, 3) AS numeric) AS base,
           CASE WHEN r_k < 0.05 THEN 'refund' WHEN r_k < 0.35 THEN 'new'
                WHEN r_k < 0.65 THEN 'renewal' WHEN r_k < 0.85 THEN 'upsell'
                ELSE 'cross_sell' END AS kind,
           date_trunc('second', {t} - (1 - g::float8 / {s.sales}) * interval '730 days'
                                    - random() * interval '1 hour') AS closed_at
    FROM (SELECT g, 1 + floor(power(random(), 1.5) * {s.old_clients})::bigint AS n,
                 random() AS r_cur, random() AS r_amt, random() AS r_k
          FROM generate_series(1, {s.sales}) AS g) AS raw
) AS x
JOIN bench_clients c ON c.n = x.n
JOIN bench_currencies f
  ON f.code = CASE WHEN x.r_cur < 0.9 THEN c.currency WHEN c.currency = 'EUR' THEN 'USD'
                   ELSE 'EUR' END
"""


def fx_sql(t: str) -> str:
    return f"""
INSERT INTO fx_rates (id, base, quote, rate, valid_on, version, created_at, updated_at,
                      created_by, updated_by)
SELECT gen_random_uuid(), b.code, q.code,
       round(q.factor / b.factor
             * CAST(1 + 0.03 * sin(d / 30.0) + 0.01 * random() AS numeric), 10),
       CAST({t} AS date) - d, 1, {t}, {t}, 'bench', 'bench'
FROM bench_currencies b JOIN bench_currencies q ON q.o > b.o
CROSS JOIN generate_series(0, 800) AS d
"""


def quota_basis_sql(t: str) -> str:
    return f"""
CREATE TEMP TABLE bench_quota_basis AS
SELECT m.n, m.id, coalesce(s.q, 0) AS sales_q, coalesce(i.q, 0) AS interactions_q,
       coalesce(i.phone_q, 0) AS phone_q, random() AS r0, random() AS r1, random() AS r2
FROM bench_managers m
LEFT JOIN (SELECT credited_manager_id AS id, sum(amount / f.factor) / 4 AS q
           FROM sales JOIN bench_currencies f ON f.code = sales.currency
           WHERE closed_at >= {t} - interval '365 days' GROUP BY 1) AS s USING (id)
LEFT JOIN (SELECT manager_id AS id, count(*) / 4.0 AS q,
                  count(*) FILTER (WHERE channel = 'phone') / 4.0 AS phone_q
           FROM interactions WHERE occurred_at >= {t} - interval '365 days'
           GROUP BY 1) AS i USING (id)
"""


def quotas_sql(t: str) -> str:
    q0 = f"date_trunc('month', {t} - interval '45 days')"
    return f"""
INSERT INTO quotas (id, manager_id, metric, period_start, period_end, target_amount,
                    target_currency, target_count, channel, version, created_at, updated_at,
                    created_by, updated_by)
SELECT gen_random_uuid(), b.id, v.metric, p.s, p.e,
       CASE WHEN v.metric = 'sales_amount'
            THEN round(CAST(greatest(1000, b.sales_q * r.factor) AS numeric), 2) END,
       CASE WHEN v.metric = 'sales_amount' THEN 'EUR' END,
       CASE WHEN v.metric = 'interaction_count'
            THEN greatest(1, round(CASE WHEN v.channel = 'phone' THEN b.phone_q
                                        ELSE b.interactions_q END * r.factor))::int END,
       v.channel, 1, p.s - interval '14 days', p.s - interval '14 days', 'bench', 'bench'
FROM bench_quota_basis b
-- The draws are columns of bench_quota_basis: a random() in a LATERAL subquery keyed on
-- v.back alone would be memoized (one draw per period).
CROSS JOIN LATERAL (VALUES
    (0, 'sales_amount', NULL, b.n % 4 <> 0, 0.6 + 0.9 * b.r0),
    (0, 'interaction_count', CASE WHEN b.n % 8 = 0 THEN 'phone' END, b.n % 4 = 0,
     0.6 + 0.9 * b.r0),
    (1, 'sales_amount', NULL, true, 0.55 + 0.65 * b.r1),
    (2, 'sales_amount', NULL, b.n % 2 = 0, 0.55 + 0.65 * b.r2))
    AS v(back, metric, channel, wanted, factor)
CROSS JOIN LATERAL (
    SELECT {q0} - make_interval(months => 3 * v.back) AS s,
           {q0} - make_interval(months => 3 * v.back) + interval '3 months' AS e) AS p
CROSS JOIN LATERAL (SELECT v.factor) AS r
WHERE v.wanted
ORDER BY b.n, v.back DESC
"""


# Indexes that back no constraint (partial ones excepted: they are small, and a predicate
# such as ``status NOT IN (…)`` comes back from its deparsed text as a slightly different
# expression tree), and primary keys / unique constraints no foreign key points at, of the
# bulk tables: dropped before the load, re-created after it from their definitions.
DEFERRABLE_SQL = """
SELECT 'index' AS kind, t.relname AS table_name, i.relname AS name,
       pg_get_indexdef(x.indexrelid) AS definition
FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
WHERE t.relname = ANY($1::text[]) AND t.relnamespace = 'public'::regnamespace
  AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid)
  AND x.indpred IS NULL  -- a predicate re-parsed from its deparsed text can differ
UNION ALL
SELECT 'constraint', t.relname, k.conname, pg_get_constraintdef(k.oid)
FROM pg_constraint k JOIN pg_class t ON t.oid = k.conrelid
WHERE t.relname = ANY($1::text[]) AND t.relnamespace = 'public'::regnamespace
  AND k.contype IN ('p', 'u')
  AND NOT EXISTS (SELECT 1 FROM pg_constraint f WHERE f.contype = 'f' AND f.confrelid = t.oid)
ORDER BY 1, 2, 3
"""

# Every index and constraint of the bulk tables, to check the re-creation was exact.
SCHEMA_SQL = """
SELECT t.relname || ' ' || i.relname || ': ' || pg_get_indexdef(x.indexrelid)
FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
WHERE t.relname = ANY($1::text[]) AND t.relnamespace = 'public'::regnamespace
UNION ALL
SELECT t.relname || ' ' || k.conname || ': ' || pg_get_constraintdef(k.oid)
FROM pg_constraint k JOIN pg_class t ON t.oid = k.conrelid
WHERE t.relname = ANY($1::text[]) AND t.relnamespace = 'public'::regnamespace
ORDER BY 1
"""


# ----------------------------------------------------------------------------- helpers


def plain(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def with_database(url: str, database: str) -> str:
    return make_url(url).set(database=database).render_as_string(hide_password=False)


def migrate(url: str) -> None:
    config = alembic_config()
    config.attributes["url"] = url
    command.upgrade(config, "head")


def affected(status: str) -> int:
    """Row count of an ``INSERT 0 n`` / ``SELECT n`` command tag."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


async def step(conn: asyncpg.Connection, label: str, sql: str, *args: Any) -> int:
    start = time.perf_counter()
    rows = affected(await conn.execute(sql, *args))
    print(f"    {label:<34} {rows:>11,} rows {time.perf_counter() - start:7.1f} s", flush=True)
    return rows


@dataclass
class Loaded:
    anchor: datetime
    rows: int
    load_s: float


async def database_exists(server_url: str, database: str) -> bool:
    conn = await asyncpg.connect(plain(server_url))
    try:
        found = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
        return found is not None
    finally:
        await conn.close()


async def recreate_database(server_url: str, database: str) -> None:
    conn = await asyncpg.connect(plain(server_url))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{database}"')
    finally:
        await conn.close()


async def drop_database(server_url: str, database: str) -> None:
    conn = await asyncpg.connect(plain(server_url))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    finally:
        await conn.close()


async def vacuum_sql(conn: asyncpg.Connection, analyze_rule_tables: bool) -> str:
    """VACUUM (ANALYZE) of every table, or of every table but the (empty) rule tables.

    ANALYZE of an empty table records ``relpages = reltuples = 0``; the planner then
    prices a scan of it at nothing, and the engine's raise and health-points statements
    (which read the table they insert into) become quadratic on a first run. Left out,
    they stay as after the migration (never analyzed), as on a fresh deployment."""
    if analyze_rule_tables:
        return "VACUUM (ANALYZE)"
    rows = await conn.fetch(
        "SELECT quote_ident(tablename) FROM pg_tables WHERE schemaname = 'public'"
        " AND tablename <> ALL($1::text[]) ORDER BY tablename",
        list(RULE_TABLES),
    )
    return "VACUUM (ANALYZE) " + ", ".join(r[0] for r in rows)


async def load(url: str, sizes: Sizes, analyze_rule_tables: bool) -> Loaded:
    anchor = datetime.now(UTC).replace(microsecond=0)
    t = f"CAST('{anchor.isoformat()}' AS timestamptz)"
    conn = await asyncpg.connect(plain(url))
    started = time.perf_counter()
    rows = 0
    try:
        async with conn.transaction():
            for setting in (
                "statement_timeout = 0",
                "session_replication_role = replica",  # no triggers / FK checks (see top)
                "work_mem = '512MB'",
                "maintenance_work_mem = '1GB'",
                "max_parallel_maintenance_workers = 2",
                "synchronous_commit = off",
                "TimeZone = 'UTC'",
            ):
                await conn.execute(f"SET LOCAL {setting}")
            await conn.execute("SELECT setseed(0.42)")
            schema_before = [r[0] for r in await conn.fetch(SCHEMA_SQL, list(BULK_TABLES))]
            deferred = await conn.fetch(DEFERRABLE_SQL, list(BULK_TABLES))
            print(
                f"    dropping {sum(1 for d in deferred if d['kind'] == 'index')} indexes and"
                f" {sum(1 for d in deferred if d['kind'] == 'constraint')} unreferenced"
                " primary keys / unique constraints for the load"
            )
            for d in deferred:
                if d["kind"] == "index":
                    await conn.execute(f'DROP INDEX "{d["name"]}"')
                else:
                    await conn.execute(
                        f'ALTER TABLE "{d["table_name"]}" DROP CONSTRAINT "{d["name"]}"'
                    )
            await conn.execute(
                "CREATE TABLE bench_meta (anchor timestamptz NOT NULL, scale float8 NOT NULL,"
                " rows bigint, load_s float8)"
            )
            await conn.execute(
                "INSERT INTO bench_meta (anchor, scale) VALUES ($1, $2)", anchor, sizes.scale
            )
            await conn.execute(currencies_sql())
            rows += await step(conn, "managers", managers_sql(t, sizes))
            await conn.execute(BENCH_MANAGERS_SQL)
            await conn.execute("CREATE UNIQUE INDEX ON bench_managers (n)")
            rows += await step(conn, "clients", clients_sql(t, sizes))
            await step(conn, "(plan) clients", bench_clients_sql(sizes))
            await conn.execute("CREATE UNIQUE INDEX ON bench_clients (n)")
            await conn.execute("ANALYZE bench_clients")
            await step(conn, "(plan) stints", stints_sql(t, sizes))
            rows += await step(conn, "assignments", assignments_sql(t))
            rows += await step(conn, "interactions", interactions_sql(t, sizes))
            await step(conn, "(plan) complaints", complaints_plan_sql(t, sizes))
            rows += await step(conn, "complaints", COMPLAINTS_SQL)
            rows += await step(conn, "complaint_transitions", TRANSITIONS_SQL)
            rows += await step(conn, "fx_rates", fx_sql(t))
            rows += await step(conn, "sales", sales_sql(t, sizes))
            await step(conn, "(plan) quota targets", quota_basis_sql(t))
            rows += await step(conn, "quotas", quotas_sql(t))
            # Constraints first (a primary key's index), then the other indexes.
            for d in sorted(deferred, key=lambda d: d["kind"] != "constraint"):
                start = time.perf_counter()
                if d["kind"] == "index":
                    await conn.execute(d["definition"])
                else:
                    await conn.execute(
                        f'ALTER TABLE "{d["table_name"]}" ADD CONSTRAINT "{d["name"]}"'
                        f" {d['definition']}"
                    )
                print(
                    f"    rebuilt {d['table_name'] + '.' + d['name']:<58}"
                    f" {time.perf_counter() - start:7.1f} s",
                    flush=True,
                )
            schema_after = [r[0] for r in await conn.fetch(SCHEMA_SQL, list(BULK_TABLES))]
            if schema_after != schema_before:
                raise RuntimeError(
                    "indexes differ after the load:\n"
                    + "\n".join(sorted(set(schema_before) ^ set(schema_after)))
                )
            print(f"    indexes and constraints identical to the migration's ({len(schema_after)})")
        start = time.perf_counter()
        await conn.execute("SET statement_timeout = 0")
        await conn.execute(await vacuum_sql(conn, analyze_rule_tables))
        await conn.execute("CHECKPOINT")
        print(
            f"    {'VACUUM (ANALYZE), CHECKPOINT':<34} {'':>16}"
            f" {time.perf_counter() - start:7.1f} s"
        )
        load_s = time.perf_counter() - started
        await conn.execute("UPDATE bench_meta SET rows = $1, load_s = $2", rows, load_s)
    finally:
        await conn.close()
    return Loaded(anchor=anchor, rows=rows, load_s=load_s)


async def reuse(url: str, scale: float, analyze_rule_tables: bool) -> Loaded | None:
    """The kept database's anchor, with the rule tables emptied; None if unusable."""
    conn = await asyncpg.connect(plain(url))
    try:
        meta = await conn.fetchrow(
            "SELECT anchor, scale, rows, load_s FROM bench_meta WHERE rows IS NOT NULL"
        )
        if meta is None or meta["scale"] != scale:
            return None
        tables = await existing(conn, RULE_TABLES)
        async with conn.transaction():
            # audit_events refuses TRUNCATE through a trigger; replica mode skips it.
            await conn.execute("SET LOCAL session_replication_role = replica")
            await conn.execute(f"TRUNCATE {', '.join(tables)}")
        if analyze_rule_tables:  # TRUNCATE leaves them never analyzed (reltuples -1)
            await conn.execute(f"VACUUM (ANALYZE) {', '.join(tables)}")
        await conn.execute("CHECKPOINT")
        return Loaded(anchor=meta["anchor"], rows=meta["rows"], load_s=meta["load_s"])
    except asyncpg.UndefinedTableError:
        return None
    finally:
        await conn.close()


async def existing(conn: asyncpg.Connection, tables: tuple[str, ...]) -> list[str]:
    rows = await conn.fetch(
        "SELECT t FROM unnest($1::text[]) WITH ORDINALITY AS u(t, o)"
        " WHERE to_regclass(t) IS NOT NULL ORDER BY o",
        list(tables),
    )
    return [r[0] for r in rows]


async def rule_table_counts(url: str) -> dict[str, int]:
    conn = await asyncpg.connect(plain(url))
    try:
        tables = await existing(conn, RULE_TABLES)
        row = await conn.fetchrow(
            "SELECT " + ", ".join(f"(SELECT count(*) FROM {t}) AS {t}" for t in tables)
        )
        assert row is not None
        return {t: int(row[t]) for t in tables}
    finally:
        await conn.close()


def backend_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a local server process (``/proc``; 0 where there is
    none): less sensitive than wall time to other work on a shared machine."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def wal_lsn(url: str) -> str:
    conn = await asyncpg.connect(plain(url))
    try:
        return str(await conn.fetchval("SELECT pg_current_wal_lsn()::text"))
    finally:
        await conn.close()


async def wal_since(url: str, lsn: str) -> tuple[int, list[str]]:
    """Bytes of WAL written since ``lsn`` (by everything on the server) and, where the
    database has the pg_walinspect extension, the biggest kinds of records."""
    conn = await asyncpg.connect(plain(url))
    try:
        end = await conn.fetchval("SELECT pg_current_wal_lsn()::text")
        size = int(
            await conn.fetchval(
                "SELECT pg_wal_lsn_diff(CAST($1::text AS pg_lsn), CAST($2::text AS pg_lsn))",
                end,
                lsn,
            )
        )
        kinds: list[str] = []
        if size > 2**20 and await conn.fetchval(
            "SELECT 1 FROM pg_extension WHERE extname = 'pg_walinspect'"
        ):
            try:
                rows = await conn.fetch(
                    'SELECT "resource_manager/record_type" AS kind, count, combined_size,'
                    " fpi_size FROM pg_get_wal_stats(CAST($1::text AS pg_lsn),"
                    " CAST($2::text AS pg_lsn), true) ORDER BY combined_size DESC LIMIT 8",
                    lsn,
                    end,
                )
                kinds = [
                    f"{r['kind']} {r['count']:,} records {r['combined_size'] / 2**20:,.1f} MB"
                    f" (full pages {r['fpi_size'] / 2**20:,.1f} MB)"
                    for r in rows
                ]
            except asyncpg.PostgresError as exc:  # WAL already recycled
                kinds = [f"(no breakdown: {exc})"]
        return size, kinds
    finally:
        await conn.close()


async def rule_table_activity(url: str) -> dict[str, tuple[int, int, int]]:
    """Rows inserted, updated and deleted so far in each rule table (``pg_stat_user_tables``;
    a backend reports them when idle or on exit, so read after the run's engine is
    disposed, and again until two reads agree)."""
    conn = await asyncpg.connect(plain(url))
    try:
        previous: dict[str, tuple[int, int, int]] | None = None
        for _ in range(20):
            rows = await conn.fetch(
                "SELECT relname, n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_user_tables"
                " WHERE relname = ANY($1::text[])",
                list(RULE_TABLES),
            )
            current = {r[0]: (int(r[1]), int(r[2]), int(r[3])) for r in rows}
            if current == previous:
                return current
            previous = current
            await asyncio.sleep(0.5)
            await conn.execute("SELECT pg_stat_clear_snapshot()")
        return previous or {}
    finally:
        await conn.close()


async def try_walinspect(url: str) -> None:
    """pg_walinspect (contrib) in the bench database, for the WAL breakdown, if the server
    has it."""
    conn = await asyncpg.connect(plain(url))
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
    except asyncpg.PostgresError as exc:
        print(f"    (no WAL breakdown: {exc})")
    finally:
        await conn.close()


async def data_profile(url: str) -> None:
    conn = await asyncpg.connect(plain(url))
    try:
        sizes = await conn.fetch(
            "SELECT relname, n_live_tup, pg_size_pretty(pg_total_relation_size(relid)) AS size"
            " FROM pg_stat_user_tables WHERE n_live_tup > 0 AND relname <> 'bench_meta'"
            " ORDER BY n_live_tup DESC"
        )
        print(
            "    " + ", ".join(f"{r['relname']} {r['n_live_tup']:,} ({r['size']})" for r in sizes)
        )
        db = await conn.fetchval("SELECT pg_size_pretty(pg_database_size(current_database()))")
        print(f"    database size {db}")
    finally:
        await conn.close()


# -------------------------------------------------------------------------- evaluation


@dataclass
class Statement:
    sql: str
    params: tuple[Any, ...]
    ms: float = 0.0
    cpu_ms: float = 0.0  # of the server process (10 ms ticks; parallel workers not seen)

    @property
    def label(self) -> str:
        s = " ".join(self.sql.split())
        if s.startswith("INSERT INTO rule_matches"):
            keys = [p for p in self.params if isinstance(p, str) and p in CATALOGUE]
            return f"match {keys[0] if keys else '?'}"
        for prefix, name in (
            ("CREATE TEMP TABLE rule_open_complaints", "facts: open complaints"),
            ("CREATE TEMP TABLE rule_client_facts", "facts: clients CREATE TABLE AS"),
            ("CREATE TEMP TABLE rule_quota_facts", "facts: quotas CREATE TABLE AS"),
            ("ANALYZE rule_client_facts", "facts: ANALYZE"),
            ("CREATE TEMP TABLE rule_matches", "match: CREATE TABLE"),
            ("CREATE TEMP TABLE rule_changes", "changes: stage (FULL JOIN)"),
            ("SELECT action, count(*) FROM rule_changes", "changes: count"),
            ("ANALYZE rule_changes", "changes: ANALYZE"),
            ("CREATE TEMP TABLE rule_changed_clients", "apply: CREATE TABLE"),
            ("WITH due AS", "apply: reopen"),
            ("WITH gone AS", "apply: resolve"),
            ("WITH raised AS", "apply: raise"),
            ("CREATE TEMP TABLE rule_scores", "apply: stage health scores"),
            ("INSERT INTO client_health_history", "apply: health points"),
            ("DROP TABLE IF EXISTS rule_client_facts", "facts: drop leftovers"),
            ("SET LOCAL work_mem", "SET work_mem"),
            ("SELECT set_config('temp_buffers'", "SET temp_buffers"),
            ("SELECT pg_advisory_xact_lock", "advisory lock"),
            ("SET LOCAL statement_timeout", "SET statement_timeout"),
            ("INSERT INTO rule_runs", "rule_runs INSERT"),
            ("UPDATE rule_runs", "rule_runs UPDATE"),
            ("SELECT rules.", "load rule configs"),
        ):
            if s.startswith(prefix):
                return name
        return s[:60]


@dataclass
class Evaluation:
    wall_s: float
    commit_s: float
    engine_ms: int
    phases: dict[str, float]
    per_rule: dict[str, dict[str, int]]
    before: dict[str, int]
    after: dict[str, int]
    statements: list[Statement] = field(default_factory=list)
    load_before: float = 0.0  # 1-minute load average of the machine (other work on it)
    load_after: float = 0.0
    settings: dict[str, str] = field(default_factory=dict)  # the app's connection settings
    wal_bytes: int = 0  # WAL written during the run (by the whole server)
    cpu_s: float = 0.0  # CPU time of the run's server process (not of parallel workers)
    wal_kinds: list[str] = field(default_factory=list)  # the biggest WAL record kinds
    # Per rule table: rows inserted, updated, deleted by the run (pg_stat_user_tables).
    activity: dict[str, tuple[int, ...]] = field(default_factory=dict)


@contextmanager
def phase_timers(phases: dict[str, float]) -> Iterator[None]:
    """Time the engine's three phases by wrapping its private functions while it runs."""
    names = ("_prepare_facts", "_match", "_apply")
    originals: dict[str, Callable[..., Awaitable[Any]]] = {
        name: getattr(rule_engine, name) for name in names
    }

    def timed(name: str, fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return await fn(*args, **kwargs)
            finally:
                phases[name] = time.perf_counter() - start

        return wrapper

    for name, fn in originals.items():
        setattr(rule_engine, name, timed(name, fn))
    try:
        yield
    finally:
        for name, fn in originals.items():
            setattr(rule_engine, name, fn)


@asynccontextmanager
async def app_engine(url: str) -> AsyncIterator[Any]:
    settings = Settings(
        database_url=url, environment=Environment.development, log_json=False, log_level="WARNING"
    )
    engine = create_engine(settings, url)
    try:
        yield engine
    finally:
        await engine.dispose()


async def evaluate(url: str, as_of: datetime) -> Evaluation:
    before = await rule_table_counts(url)
    activity_before = await rule_table_activity(url)
    lsn_before = await wal_lsn(url)
    load_before = os.getloadavg()[0]
    phases: dict[str, float] = {}
    statements: list[Statement] = []
    async with app_engine(url) as engine:
        sessionmaker = create_sessionmaker(engine)
        async with engine.connect() as warm:  # open the pooled connection outside the timing
            # The pool's one connection, which the run then uses: its server process.
            backend = int((await warm.execute(text("SELECT pg_backend_pid()"))).scalar_one())
            settings = {
                name: value
                for name, value in await warm.execute(
                    text("SELECT name, setting FROM pg_settings WHERE source = 'client'")
                )
            }
        started: list[tuple[float, float]] = []

        def before_execute(
            conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any
        ) -> None:
            statements.append(Statement(statement, tuple(parameters or ())))
            started.append((time.perf_counter(), backend_cpu_s(backend)))

        def after_execute(
            conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any
        ) -> None:
            wall, cpu = started.pop()
            statements[-1].ms = (time.perf_counter() - wall) * 1000
            statements[-1].cpu_ms = (backend_cpu_s(backend) - cpu) * 1000

        event.listen(engine.sync_engine, "before_cursor_execute", before_execute)
        event.listen(engine.sync_engine, "after_cursor_execute", after_execute)
        try:
            with phase_timers(phases):
                cpu_before = backend_cpu_s(backend)
                start = time.perf_counter()
                async with sessionmaker.begin() as session:
                    run = await run_rules(
                        session,
                        as_of=as_of,
                        time_zone="UTC",
                        trigger="bench",
                        actor="bench",
                        wait=True,
                        statement_timeout_ms=0,
                    )
                    committing = time.perf_counter()
                finished = time.perf_counter()
                cpu_s = backend_cpu_s(backend) - cpu_before
        finally:
            event.remove(engine.sync_engine, "before_cursor_execute", before_execute)
            event.remove(engine.sync_engine, "after_cursor_execute", after_execute)
    wal_bytes, wal_kinds = await wal_since(url, lsn_before)
    after = await rule_table_counts(url)
    activity_after = await rule_table_activity(url)
    return Evaluation(
        wall_s=finished - start,
        commit_s=finished - committing,
        engine_ms=run.duration_ms,
        phases=phases,
        per_rule=run.per_rule,
        before=before,
        after=after,
        statements=statements,
        load_before=load_before,
        load_after=os.getloadavg()[0],
        settings=settings,
        wal_bytes=wal_bytes,
        wal_kinds=wal_kinds,
        cpu_s=cpu_s,
        activity={
            t: tuple(a - b for a, b in zip(activity_after[t], activity_before[t], strict=True))
            for t in activity_after
        },
    )


def print_evaluation(title: str, ev: Evaluation, statements: bool) -> None:
    p = ev.phases
    print(
        f"\n  {title}: {ev.wall_s:.2f} s wall (run_rules + commit; engine duration_ms"
        f" {ev.engine_ms:,}; commit {ev.commit_s:.2f} s; server process CPU {ev.cpu_s:.2f} s;"
        " load average"
        f" {ev.load_before:.2f} → {ev.load_after:.2f} on {os.cpu_count()} CPUs)"
    )
    print(
        f"    phases: facts {p.get('_prepare_facts', 0):.2f} s, match {p.get('_match', 0):.2f} s,"
        f" apply {p.get('_apply', 0):.2f} s"
    )
    print(
        f"    {'rule':<26} {'match ms':>9} {'matched':>9} {'raised':>8} {'resolved':>9}"
        f" {'reopened':>9} {'still open':>10}"
    )
    for key in CATALOGUE:
        c = ev.per_rule.get(key, {})
        print(
            f"    {key:<26} {c.get('match_ms', 0):>9,} {c.get('matched', 0):>9,}"
            f" {c.get('raised', 0):>8,} {c.get('resolved', 0):>9,} {c.get('reopened', 0):>9,}"
            f" {c.get('still_open', 0):>10,}"
        )
    delta = {t: ev.after[t] - ev.before[t] for t in ev.after}
    print(
        "    rows written: "
        + ", ".join(f"{t} {ev.before[t]:,} → {ev.after[t]:,} (+{delta[t]:,})" for t in ev.after)
    )
    print(f"    WAL written during the run (whole server): {ev.wal_bytes / 2**20:,.1f} MB")
    for kind in ev.wal_kinds:
        print(f"      {kind}")
    print(
        "    rows inserted/updated/deleted (pg_stat_user_tables): "
        + ", ".join(f"{t} {'/'.join(f'{n:,}' for n in a)}" for t, a in ev.activity.items())
    )
    if statements:
        print("    statements (time as seen by the driver; CPU of the server process):")
        for s in ev.statements:
            print(f"      {s.label:<36} {s.ms:>10,.1f} ms  CPU {s.cpu_ms:>8,.0f} ms")


# ----------------------------------------------------------------------------- EXPLAIN


def explainable(s: Statement) -> bool:
    head = " ".join(s.sql.split())
    return (
        head.startswith("INSERT INTO")
        or head.startswith("WITH ")
        or (head.startswith("CREATE TEMP TABLE") and (" AS SELECT" in head or " AS WITH" in head))
    )


def engine_statements(ev: Evaluation) -> list[Statement]:
    """The run's statements from its settings to the health points, without the writes
    of its ``rule_runs`` row (the replay's run row is the original's)."""
    labels = [s.label for s in ev.statements]
    first = labels.index("SET statement_timeout")
    # A run that changes nothing ends with its changes counted.
    last = max(i for i, label in enumerate(labels) if label.startswith(("apply: ", "changes: ")))
    return [s for s in ev.statements[first : last + 1] if not s.label.startswith("rule_runs")]


async def explain_replay(
    url: str, ev: Evaluation, preamble: list[str], only: str = ""
) -> list[tuple[Statement, list[str]]]:
    """Replay the run's statements in a transaction that is rolled back, with the app's
    connection settings (``jit`` …), each DML one (whose label starts with ``only``)
    under EXPLAIN (ANALYZE, BUFFERS); return every statement's plan (empty when not
    explained)."""
    conn = await asyncpg.connect(plain(url))
    plans: list[tuple[Statement, list[str]]] = []
    try:
        tr = conn.transaction()
        await tr.start()
        try:
            for name, value in ev.settings.items():
                await conn.execute("SELECT set_config($1, $2, true)", name, value)
            await conn.execute("SET LOCAL statement_timeout = 0")
            for sql in preamble:
                await conn.execute(sql)
            for s in engine_statements(ev):
                if explainable(s) and s.label.startswith(only):
                    rows = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {s.sql}", *s.params)
                    plans.append((s, [str(r[0]) for r in rows]))
                else:
                    await conn.execute(s.sql, *s.params)
                    plans.append((s, []))
        finally:
            await tr.rollback()
    finally:
        await conn.close()
    return plans


def execution_ms(plan: list[str]) -> float:
    for line in reversed(plan):
        if line.startswith("Execution Time:"):
            return float(line.split()[2])
    return 0.0


def print_plan(title: str, plan: list[str]) -> None:
    print(f"\n  ---- {title}")
    print("\n".join("    " + line for line in plan))


def slowest(
    plans: list[tuple[Statement, list[str]]], prefix: str
) -> list[tuple[Statement, list[str]]]:
    return sorted(
        ((s, p) for s, p in plans if s.label.startswith(prefix) and p),
        key=lambda sp: execution_ms(sp[1]),
        reverse=True,
    )


def empty_rule_tables(tables: list[str], analyze: bool) -> list[str]:
    """SQL putting the rule tables back as they were before the first run: TRUNCATE gives
    them new, empty files with ``reltuples = -1`` (never analyzed, as after the
    migration, the timed first run's state by default); ANALYZE then records them as
    empty (``relpages = reltuples = 0``: the state after a VACUUM ANALYZE of the empty
    tables, ``--analyze-empty-rule-tables``). Both are undone by the rollback.
    ``rule_runs`` stays: the flags refer to the run."""
    emptied = [t for t in tables if t != "rule_runs"]
    sql = [
        "SET LOCAL session_replication_role = replica",  # audit_events refuses TRUNCATE
        f"TRUNCATE {', '.join(emptied)}",
        "SET LOCAL session_replication_role = origin",
    ]
    if analyze:
        sql.append(f"ANALYZE {', '.join(emptied)}")
    return sql


async def explain(
    url: str, full: Evaluation, rerun: Evaluation, plans: bool, first_run: bool
) -> None:
    print("\n  EXPLAIN (ANALYZE, BUFFERS), statements replayed in a transaction that is rolled")
    print("  back (caches warm after the runs; EXPLAIN ANALYZE adds timing overhead).")
    if plans:
        await explain_rerun(url, rerun)
    if first_run:
        await explain_first_run(url, full)


async def explain_rerun(url: str, rerun: Evaluation) -> None:
    settings = ", ".join(f"{k}={v}" for k, v in sorted(rerun.settings.items()))
    print(f"  (the app's connection settings, applied to the replay: {settings})")
    again = await explain_replay(url, rerun, [])
    print(f"\n    {'statement (re-run replay)':<36} {'ms':>10}")
    for s, p in again:
        if p:
            print(f"    {s.label:<36} {execution_ms(p):>10,.1f}")
    by_label = {s.label: p for s, p in again}
    print_plan("client facts CREATE TABLE AS", by_label["facts: clients CREATE TABLE AS"])
    print_plan("quota facts CREATE TABLE AS", by_label["facts: quotas CREATE TABLE AS"])
    print_plan("changes FULL JOIN", by_label["changes: stage (FULL JOIN)"])
    for s, p in slowest(again, "match ")[:2]:
        print_plan(f"{s.label} (INSERT INTO rule_matches … SELECT)", p)
    for s, p in slowest(again, "apply: ")[:1]:
        print_plan(f"{s.label}, re-run (its slowest apply statement)", p)


async def explain_first_run(url: str, full: Evaluation) -> None:
    tables = list(full.after)
    for state, analyze in (
        ("rule tables empty, never analyzed (as after the migration)", False),
        ("rule tables empty and ANALYZEd as empty (e.g. after a VACUUM ANALYZE)", True),
    ):
        first = await explain_replay(url, full, empty_rule_tables(tables, analyze), only="apply: ")
        print(f"\n  First run's apply statements replayed, {state}:")
        for s, p in first:
            if p:
                print(f"    {s.label:<36} {execution_ms(p):>10,.1f} ms")
        for s, p in slowest(first, "apply: ")[:2]:
            print_plan(f"{s.label}, first run, {state}", p)


# -------------------------------------------------------------------------------- main


@dataclass
class ScaleResult:
    scale: float
    clients: int
    rows: int
    load_s: float
    full: Evaluation
    rerun: Evaluation


async def bench_scale(
    server_url: str,
    scale: float,
    *,
    keep: bool,
    reuse_db: bool,
    plans: bool,
    first_run: bool,
    analyze_rule_tables: bool,
) -> ScaleResult:
    sizes = Sizes(scale)
    database = database_of(scale)
    url = with_database(server_url, database)
    print(f"\n=== scale {scale:g}: database {database}", flush=True)
    loaded: Loaded | None = None
    if reuse_db and await database_exists(server_url, database):
        start = time.perf_counter()
        await asyncio.to_thread(migrate, url)  # a kept database may predate a migration
        print(f"  migrated the kept database to head in {time.perf_counter() - start:.1f} s")
        loaded = await reuse(url, scale, analyze_rule_tables)
        if loaded is not None:
            print(
                f"  reusing the loaded data (anchor {loaded.anchor.isoformat()}),"
                " rule tables emptied"
            )
    if loaded is None:
        await recreate_database(server_url, database)
        start = time.perf_counter()
        await asyncio.to_thread(migrate, url)
        print(f"  migrated to head in {time.perf_counter() - start:.1f} s")
        print(
            f"  loading {sizes.clients:,} clients, {sizes.interactions:,} interactions,"
            f" {sizes.complaints:,} complaints, {sizes.sales:,} sales, {sizes.managers:,} managers:"
        )
        loaded = await load(url, sizes, analyze_rule_tables)
        print(
            f"  loaded {loaded.rows:,} rows in {loaded.load_s:.1f} s (with index rebuild, VACUUM)"
        )
    await data_profile(url)
    await try_walinspect(url)
    # as_of a little ahead of now, as a scheduled run's (now): the engine takes the
    # open complaints' state from their running totals when as_of >= now, from their
    # transition history for a past as_of; both runs must take the same path.
    as_of = datetime.now(UTC).replace(microsecond=0) + AS_OF_AHEAD
    print(
        f"  as_of {as_of.isoformat()} (now + {AS_OF_AHEAD}; the data's anchor +"
        f" {as_of - loaded.anchor})"
    )
    full = await evaluate(url, as_of)
    print_evaluation("full run", full, statements=True)
    rerun = await evaluate(url, as_of)
    print_evaluation("re-run, same as_of", rerun, statements=True)
    wrote = {t: rerun.after[t] - rerun.before[t] for t in rerun.after if t != "rule_runs"}
    touched = {t: a for t, a in rerun.activity.items() if t != "rule_runs" and any(a)}
    print(
        "    re-run wrote rule rows: "
        + ("no" if not any(wrote.values()) and not touched else f"YES {wrote!r} {touched!r}")
        + f" (rule_runs: its own row, inserted/updated/deleted {rerun.activity.get('rule_runs')})"
    )
    if plans or first_run:
        await explain(url, full, rerun, plans, first_run)
    if not keep:
        await drop_database(server_url, database)
        print(f"  dropped {database}")
    return ScaleResult(scale, sizes.clients, loaded.rows, loaded.load_s, full, rerun)


def print_summary(results: list[ScaleResult]) -> None:
    print("\n=== Summary (targets, DESIGN §6: full run < 15 s at 1.0, re-run < 10 s, linear)")
    print(
        f"  {'scale':>5} {'clients':>10} {'rows':>12} {'load s':>8} {'full run s':>11}"
        f" {'facts':>6} {'match':>6} {'apply':>6} {'re-run s':>9} {'flags':>8}"
        f" {'full/row':>9} {'re-run/row':>11} {'full CPU':>9} {'re-run CPU':>11} {'loadavg':>8}"
    )
    base = results[0]
    for r in results:
        p = r.full.phases
        per_row = (r.full.wall_s / r.rows) / (base.full.wall_s / base.rows)
        per_row_again = (r.rerun.wall_s / r.rows) / (base.rerun.wall_s / base.rows)
        print(
            f"  {r.scale:>5g} {r.clients:>10,} {r.rows:>12,} {r.load_s:>8.1f}"
            f" {r.full.wall_s:>11.2f} {p.get('_prepare_facts', 0):>6.2f}"
            f" {p.get('_match', 0):>6.2f} {p.get('_apply', 0):>6.2f} {r.rerun.wall_s:>9.2f}"
            f" {r.full.after['flags']:>8,} {per_row:>9.2f} {per_row_again:>11.2f}"
            f" {r.full.cpu_s:>9.2f} {r.rerun.cpu_s:>11.2f}"
            f" {max(r.full.load_before, r.full.load_after, r.rerun.load_after):>8.2f}"
        )
    print(
        "  full/row, re-run/row: time per loaded row relative to the smallest scale (1.00 ="
        " linear); CPU: seconds of the run's server process; loadavg: the highest 1-minute"
        " load average seen around the runs"
    )


def parse_scales(value: str) -> list[float]:
    return [float(v) for v in value.split(",") if v.strip()]


def code_version() -> str:
    """The commit the benchmark ran against, ``-dirty`` with uncommitted changes."""
    result = subprocess.run(
        ["git", "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
        check=False,
    )
    return result.stdout.strip() or "unknown"


async def main_async(args: argparse.Namespace) -> None:
    server_url = os.environ.get("DATABASE_URL", DEFAULT_URL)
    conn = await asyncpg.connect(plain(server_url))
    try:
        server = await conn.fetchval("SHOW server_version")
        config = await conn.fetch(
            "SELECT name, current_setting(name) AS setting FROM pg_settings"
            " WHERE name = ANY($1::text[]) ORDER BY name",
            ["shared_buffers", "work_mem", "jit", "max_parallel_workers_per_gather"],
        )
    finally:
        await conn.close()
    print(
        f"code {code_version()}, PostgreSQL {server} ("
        + ", ".join(f"{r['name']}={r['setting']}" for r in config)
        + f"), {os.cpu_count()} CPUs"
    )
    if args.scales:
        scales = sorted(parse_scales(args.scales))
    elif args.scale is not None:
        scales = [args.scale]
    else:
        scales = list(DEFAULT_SCALES)
    results = []
    for scale in scales:
        results.append(
            await bench_scale(
                server_url,
                scale,
                keep=args.keep,
                reuse_db=args.reuse,
                plans=not args.no_explain and (args.explain_all or scale == scales[-1]),
                # The first run's apply replayed twice: where it is quadratic, at the
                # smallest scale only unless asked.
                first_run=not args.no_explain and (args.explain_all or scale == scales[0]),
                analyze_rule_tables=args.analyze_empty_rule_tables,
            )
        )
    print_summary(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--scale", type=float, help="one scale (1.0 = a million clients)")
    parser.add_argument("--scales", help="comma-separated scales, e.g. 0.25,0.5,1.0")
    parser.add_argument("--keep", action="store_true", help="keep the databases")
    parser.add_argument(
        "--reuse", action="store_true", help="reuse a kept database of the same scale"
    )
    parser.add_argument("--explain-all", action="store_true", help="print the plans at every scale")
    parser.add_argument("--no-explain", action="store_true", help="print no plans (faster)")
    parser.add_argument(
        "--analyze-empty-rule-tables",
        action="store_true",
        help="VACUUM ANALYZE the empty rule tables too before the first run (their"
        " statistics then say empty: the first run's raise and health points go quadratic)",
    )
    configure_logging("WARNING", json_output=False)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
