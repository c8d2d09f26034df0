# ruff: noqa: E402
"""HTTP throughput and latency of the service against a bare FastAPI + asyncpg baseline
(DESIGN §6), over real sockets, one uvicorn worker each.

Run by hand: ``.venv/bin/python bench/http_load.py`` (``--help`` for the knobs; ``--keep``
leaves the database in place, ``--reuse`` benchmarks a kept one without reloading,
``--only read,list`` measures some endpoints). Needs ``wrk`` and ``hey`` (``apt-get
install -y wrk hey``).

1. (Re)creates the database ``ams_bench_http`` on ``DATABASE_URL`` (default
   ``postgresql://postgres@127.0.0.1:5432/postgres``), migrates it to head and loads with
   set-based SQL: 200 managers (a head of sales, 9 team leads, 190 account managers),
   100,000 clients named in seven scripts (Hungarian, Greek, Kazakh Cyrillic, Arabic,
   Hebrew, English, Japanese/Chinese) with a primary assignment each, 1,000,000
   interactions (skewed towards some clients), 50,000 open complaints (with their
   ``open`` transition), and for one account manager 2,000 EUR sales and three quotas
   (sales this and last quarter, interactions this quarter); then VACUUM ANALYZE.
2. Starts the service as ``ams serve --no-migrate`` with ``LOG_LEVEL=WARNING`` (at INFO
   the one-JSON-line-per-request access log goes to stderr, which would be measured
   too; ``--log-level INFO`` measures that) and ``RULES__SCHEDULE_INTERVAL_S=0``, and the
   baseline (``bench/baseline_app.py``: ``GET /clients/{id}``, one ``pool.fetchrow`` by
   primary key returned as JSON), each one uvicorn process served the same way.
3. SQL per request: with ``log_statement = 'all'`` set on the bench database (and fresh
   server processes), sends each request a few times and counts the statements Postgres
   logged for it (BEGIN, the pool's pre-ping, the queries, COMMIT...), from the server
   log (``--pg-log``, Debian's default path); this also checks every endpoint answers
   2xx. Then restarts both servers with logging back to normal.
4. Saturation: ``wrk`` with 32 connections (2 threads), 3 s warm-up then 10 s per
   endpoint, with a Lua script that picks a random client per request and sends the
   bearer token: read one client, list 50 clients of segment ``key``, search ``q`` (a
   random 3-letter term in one of the scripts), create an interaction (admin, with
   ``manager_id`` and a past ``occurred_at``), a client's timeline page of 50, a quota's
   attainment; the baseline is measured before, between every two endpoints and after
   them, and each endpoint's ratio is to the mean of the two baseline runs around it.
   Each run also records the CPU time the server process (and the bench database's
   backends) spent per request, from ``/proc``: on a shared host it moves far less than
   req/s does, so the ratio of CPU per request to the baseline's ("x CPU") is the
   steadier estimate of the req/s ratio on a quiet machine.
5. Fixed offered load: ``hey -c 10 -q 20`` (200 req/s) for 10 s per endpoint (one fixed
   URL or body each: hey cannot vary them), p50 / p99 from its per-request CSV.
6. If read-by-id is below 0.5x the baseline (``--profile always``: anyway; ``all``: every
   endpoint): ``py-spy record`` of the service process for 10 s under that load; the
   raw stacks are attributed to layers (auth, middleware, routing, SQLAlchemy, asyncpg,
   pydantic...) and to operations (pre-ping, BEGIN, COMMIT, JWT decode...), and a flame
   graph is left in ``/tmp/ams-bench-http/``.

Targets (DESIGN §6): read-by-id >= 0.5x the baseline's req/s; lists and creates >= 0.3x;
at 200 req/s p99 < 15 ms for reads and < 30 ms for writes; at saturation p99 <= 3x p50.
The machine has 2 cores shared by the load generator, both servers and Postgres: compare
ratios, not absolute figures, and look at the load average printed with each run.
"""

from __future__ import annotations

import os
import sys

# This file is named like the standard library's ``http`` package and Python puts a
# script's folder first on the import path: take it off before anything imports
# ``http.client`` (httpx, starlette...).
_HERE = os.path.realpath(os.path.dirname(os.path.abspath(__file__)))
sys.path[:] = [p for p in sys.path if os.path.realpath(p or os.curdir) != _HERE]

import argparse
import asyncio
import csv
import json
import re
import shutil
import signal
import socket
import statistics
import subprocess
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from alembic import command
from sqlalchemy.engine import make_url

from app.config import Settings
from app.core.auth import Role, mint_token
from app.core.health import alembic_config
from app.core.periods import FiscalCalendar, PeriodKind

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.prefix) / "bin"
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_PG_LOG = "/var/log/postgresql/postgresql-15-main.log"
DATABASE = "ams_bench_http"
WORKDIR = Path("/tmp/ams-bench-http")
CLIENTS = 100_000
INTERACTIONS = 1_000_000
COMPLAINTS = 50_000
SALES = 2_000
SAMPLE_IDS = 10_000
COUNT_CALLS = 5

# ---------------------------------------------------------------------------- data

MANAGERS_SQL = """
INSERT INTO managers (id, email, full_name, role, reports_to_id, region, time_zone, active,
                      version, created_at, updated_at, created_by, updated_by)
VALUES (gen_random_uuid(), 'head@bench.example', 'Kovács Éva', 'sales_manager', NULL, 'EMEA',
        'Europe/Budapest', true, 1, now() - interval '6 years', now() - interval '6 years',
        'bench', 'bench');

INSERT INTO managers (id, email, full_name, role, reports_to_id, region, time_zone, active,
                      version, created_at, updated_at, created_by, updated_by)
SELECT gen_random_uuid(), 'lead-' || g || '@bench.example',
       (ARRAY['Nagy Péter', 'Παπαδόπουλος Νίκος', 'Сейітов Айбек', 'ليلى حداد',
              'נועה לוי', 'Sarah Jones', '佐藤 健', 'Szabó Anna', 'Γεωργίου Ελένη'])[g],
       'team_lead', (SELECT id FROM managers WHERE role = 'sales_manager'),
       (ARRAY['EMEA', 'APAC', 'AMER'])[1 + g % 3], 'Europe/Budapest', true, 1,
       now() - interval '5 years', now() - interval '5 years', 'bench', 'bench'
FROM generate_series(1, 9) AS g;

INSERT INTO managers (id, email, full_name, role, reports_to_id, region, time_zone, active,
                      version, created_at, updated_at, created_by, updated_by)
SELECT gen_random_uuid(), 'am-' || lpad(g::text, 3, '0') || '@bench.example',
       (ARRAY['Tóth', 'Ελευθερίου', 'Нұрланов', 'العلي', 'כהן', 'Smith', '田中'])[1 + g % 7]
           || ' ' || g,
       (ARRAY['associate_account_manager', 'account_manager',
              'senior_account_manager'])[1 + g % 3],
       leads.ids[1 + g % 9], 'EMEA', 'Europe/Budapest', true, 1,
       now() - interval '5 years', now() - interval '5 years', 'bench', 'bench'
FROM generate_series(1, 190) AS g,
     (SELECT array_agg(id ORDER BY email) AS ids FROM managers WHERE role = 'team_lead')
         AS leads;
"""

# Seven scripts; a name is [prefix] word word [suffix] of one script.
CLIENTS_SQL = """
WITH scripts(script, words, prefixes, suffixes, country, currency, tz) AS (VALUES
    (0, ARRAY['Ügyfél', 'Árvíztűrő', 'Fényes', 'Gyöngy', 'Tükör', 'Erős', 'Kövér',
              'Szép', 'Hajnal', 'Csillag'],
        ARRAY[''], ARRAY[' Kft.', ' Zrt.', ' Bt.', ' Nyrt.'], 'HU', 'HUF', 'Europe/Budapest'),
    (1, ARRAY['Αθηνά', 'Ολυμπία', 'Ερμής', 'Δήμητρα', 'Απόλλων', 'Ήλιος', 'Θάλασσα',
              'Αιγαίο', 'Κρήτη', 'Νίκη'],
        ARRAY[''], ARRAY[' Α.Ε.', ' Ε.Π.Ε.', ' Ι.Κ.Ε.'], 'GR', 'EUR', 'Europe/Athens'),
    (2, ARRAY['Алматы', 'Астана', 'Береке', 'Жұлдыз', 'Сапа', 'Дала', 'Тұлпар', 'Алтын',
              'Шұғыла', 'Көкжиек'],
        ARRAY[''], ARRAY[' ЖШС', ' АҚ', ' ТОО'], 'KZ', 'KZT', 'Asia/Almaty'),
    (3, ARRAY['الأمل', 'النور', 'الفجر', 'السلام', 'الخليج', 'الريان', 'الواحة', 'البركة',
              'الصفوة', 'الرواد'],
        ARRAY['شركة ', 'مؤسسة ', 'مجموعة '], ARRAY['', ' ذ.م.م'], 'AE', 'AED', 'Asia/Dubai'),
    (4, ARRAY['אור', 'שלום', 'גליל', 'כרמל', 'נגב', 'תמר', 'ארז', 'אלון', 'שחר', 'רימון'],
        ARRAY[''], ARRAY[' בע"מ', ' ושות׳'], 'IL', 'ILS', 'Asia/Jerusalem'),
    (5, ARRAY['Northwind', 'Contoso', 'Fabrikam', 'Tailspin', 'Globex', 'Initech',
              'Umbrella', 'Wayne', 'Stark', 'Acme'],
        ARRAY[''], ARRAY[' Ltd', ' Inc.', ' LLC', ' plc'], 'GB', 'GBP', 'Europe/London'),
    (6, ARRAY['東方', '長城', '富士', '桜花', '太陽', '明星', '光明', '天成', '大和', '青山'],
        ARRAY[''], ARRAY['株式会社', '有限公司'], 'JP', 'JPY', 'Asia/Tokyo')
),
numbered AS (
    SELECT g, random() AS r_segment, random() AS r_value, random() AS r_legal
    FROM generate_series(1, $1::int) AS g
)
INSERT INTO clients (id, name, legal_name, external_ref, industry, segment, lifecycle_stage,
                     country, currency, time_zone, renewal_date, annual_value_amount,
                     annual_value_currency, version, created_at, updated_at, created_by,
                     updated_by)
SELECT gen_random_uuid(), t.name,
       CASE WHEN n.r_legal < 0.5 THEN t.name || ' (' || n.g || ')' END,
       'CRM-' || lpad(n.g::text, 7, '0'),
       (ARRAY['Manufacturing', 'Retail', 'Banking', 'Logistics', 'Energy', 'Healthcare',
              'Software', 'Telecom'])[1 + n.g % 8],
       CASE WHEN n.r_segment < 0.02 THEN 'strategic' WHEN n.r_segment < 0.10 THEN 'key'
            WHEN n.r_segment < 0.30 THEN 'enterprise' WHEN n.r_segment < 0.65 THEN 'mid_market'
            ELSE 'small' END,
       (ARRAY['active', 'active', 'active', 'active', 'onboarding', 'prospect',
              'churned'])[1 + n.g % 7],
       s.country, s.currency, s.tz, current_date + (n.g % 365),
       round((5000 + n.r_value * 995000)::numeric, CASE s.currency WHEN 'JPY' THEN 0 ELSE 2 END),
       s.currency, 1,
       now() - interval '5 years' + n.g * (interval '5 years' / $1::int),
       now() - interval '5 years' + n.g * (interval '5 years' / $1::int), 'bench', 'bench'
FROM numbered AS n
JOIN scripts AS s ON s.script = n.g % 7
CROSS JOIN LATERAL (
    SELECT s.prefixes[1 + (n.g / 7) % array_length(s.prefixes, 1)]
           || s.words[1 + (n.g / 7) % 10] || ' ' || s.words[1 + (n.g / 70) % 10]
           || s.suffixes[1 + (n.g / 11) % array_length(s.suffixes, 1)] AS name
) AS t
"""

# Every client's primary account manager (a multiplicative hash over the 190).
PLAN_SQL = """
CREATE TEMP TABLE bench_clients AS
SELECT c.n, c.id, c.created_at, m.ids[1 + (c.n * 7919) % array_length(m.ids, 1)] AS manager_id
FROM (SELECT id, created_at, row_number() OVER (ORDER BY created_at, id) AS n FROM clients)
         AS c,
     (SELECT array_agg(id ORDER BY email) AS ids FROM managers
      WHERE role NOT IN ('sales_manager', 'team_lead')) AS m;
CREATE UNIQUE INDEX ON bench_clients (n);
ANALYZE bench_clients;
"""

ASSIGNMENTS_SQL = """
INSERT INTO assignments (id, client_id, manager_id, role, starts_at, ends_at, reason, version,
                         created_at, updated_at, created_by, updated_by)
SELECT gen_random_uuid(), id, manager_id, 'primary', created_at, NULL, 'Account opened', 1,
       created_at, created_at, 'bench', 'bench'
FROM bench_clients
"""

INTERACTIONS_SQL = """
INSERT INTO interactions (id, client_id, manager_id, channel, direction, occurred_at,
                          duration_minutes, subject, notes, sentiment, decisions,
                          next_step_description, next_step_due_at, next_step_done, version,
                          created_at, updated_at, created_by, updated_by)
SELECT gen_random_uuid(), c.id, c.manager_id,
       (ARRAY['email', 'phone', 'video_call', 'meeting', 'presentation', 'screen_share',
              'chat', 'event', 'other'])[1 + floor(s.r1 * 9)::int],
       CASE WHEN s.r2 < 0.4 THEN 'inbound' ELSE 'outbound' END,
       t.at, CASE WHEN s.r2 < 0.7 THEN 5 + floor(s.r3 * 85)::int END,
       (ARRAY['Quarterly business review', 'Renewal discussion', 'Support escalation',
              'Product demo', 'Pricing question', 'Onboarding check-in',
              'Éves szerződés egyeztetése', 'Συνάντηση ανασκόπησης', 'Келісімшарт талқылауы',
              'مناقشة التجديد', 'שיחת מעקב', '契約更新の打ち合わせ'])[1 + floor(s.r3 * 12)::int],
       CASE WHEN s.r1 < 0.7 THEN 'Discussed the account plan, open items and next quarter.' END,
       (ARRAY['positive', 'neutral', 'negative', NULL])[1 + floor(s.r2 * 4)::int],
       CASE WHEN s.r3 < 0.3 THEN ARRAY['Send the revised offer', 'Schedule a follow-up']
            ELSE '{}' END,
       CASE WHEN s.r4 < 0.2 THEN 'Follow up on the open items' END,
       CASE WHEN s.r4 < 0.2 THEN t.at + interval '7 days' END,
       CASE WHEN s.r4 < 0.2 THEN t.at + interval '7 days' < now() AND s.r4 < 0.18 END,
       1, t.at, t.at, 'bench', 'bench'
FROM (
    SELECT g, 1 + floor(power(random(), 1.3) * $1::int)::int AS n, random() AS r,
           random() AS r1, random() AS r2, random() AS r3, random() AS r4
    FROM generate_series(1, $2::int) AS g
) AS s
JOIN bench_clients AS c USING (n)
CROSS JOIN LATERAL (SELECT c.created_at + s.r * (now() - c.created_at) AS at) AS t
"""

COMPLAINTS_SQL = """
INSERT INTO complaints (id, client_id, title, description, category, severity, channel,
                        received_at, assignee_id, status, active_time, clock_since,
                        clock_running, version, created_at, updated_at, created_by,
                        updated_by)
SELECT gen_random_uuid(), c.id,
       (ARRAY['Invoice charged twice', 'Delivery late', 'Support did not call back',
              'Hibás számla', 'Καθυστέρηση παράδοσης', 'Жеткізу кешікті', 'تأخر التسليم',
              'חשבונית שגויה', '納品の遅れ'])[1 + floor(s.r1 * 9)::int],
       'Reported by the client; details in the ticket.',
       (ARRAY['product', 'service', 'billing', 'delivery', 'communication', 'other'])
           [1 + floor(s.r2 * 6)::int],
       (ARRAY['low', 'medium', 'medium', 'high', 'critical'])[1 + floor(s.r3 * 5)::int],
       (ARRAY['email', 'phone', 'chat'])[1 + floor(s.r1 * 3)::int],
       t.at, c.manager_id, 'open', interval '0', t.at, true, 1, t.at, t.at, 'bench', 'bench'
FROM (
    SELECT g, 1 + floor(random() * $1::int)::int AS n, random() AS r, random() AS r1,
           random() AS r2, random() AS r3
    FROM generate_series(1, $2::int) AS g
) AS s
JOIN bench_clients AS c USING (n)
CROSS JOIN LATERAL (
    SELECT greatest(c.created_at, now() - interval '2 years')
           + s.r * (now() - greatest(c.created_at, now() - interval '2 years')) AS at
) AS t
"""

TRANSITIONS_SQL = """
INSERT INTO complaint_transitions (id, complaint_id, client_id, from_status, to_status, at,
                                   actor, note)
SELECT gen_random_uuid(), id, client_id, NULL, 'open', received_at, 'bench', NULL
FROM complaints
"""

# The account manager with the most clients gets the sales and the quotas.
QUOTA_MANAGER_SQL = """
SELECT manager_id FROM bench_clients GROUP BY manager_id ORDER BY count(*) DESC, manager_id
LIMIT 1
"""

SALES_SQL = """
INSERT INTO sales (id, client_id, amount, currency, closed_at, kind, product,
                   credited_manager_id, version, created_at, updated_at, created_by,
                   updated_by)
SELECT gen_random_uuid(), c.ids[1 + g % array_length(c.ids, 1)],
       CASE WHEN s.r < 0.03 THEN -round((50 + s.r2 * 2000)::numeric, 2)
            ELSE round((500 + s.r2 * 20000)::numeric, 2) END,
       'EUR', s.at,
       CASE WHEN s.r < 0.03 THEN 'refund' WHEN s.r < 0.4 THEN 'new' WHEN s.r < 0.8
            THEN 'renewal' ELSE 'upsell' END,
       'Bench product ' || (1 + g % 7), $1::uuid, 1, s.at, s.at, 'bench', 'bench'
FROM (
    SELECT g, random() AS r, random() AS r2,
           date_trunc('second', now() - random() * interval '365 days') AS at
    FROM generate_series(1, $2::int) AS g
) AS s,
     (SELECT array_agg(id ORDER BY id) AS ids FROM bench_clients WHERE manager_id = $1::uuid)
         AS c
"""

QUOTA_SQL = """
INSERT INTO quotas (id, manager_id, metric, period_label, period_start, period_end,
                    target_amount, target_currency, target_count, version, created_at,
                    updated_at, created_by, updated_by)
VALUES (gen_random_uuid(), $1::uuid, $2, $3, $4, $5, $6, $7, $8, 1, now(), now(), 'bench',
        'bench')
RETURNING id
"""

SAMPLE_SQL = """
SELECT id, manager_id FROM bench_clients ORDER BY random() LIMIT $1::int
"""

# 3-letter search terms, one or two per script (accents and case do not matter).
SEARCH_TERMS = "ugy fen θην ερμ аст алт نور سلا שלו glo win 大和株".split()


def plain(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def recreate_database(server_url: str) -> None:
    conn = await asyncpg.connect(plain(server_url))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{DATABASE}"')
    finally:
        await conn.close()


async def drop_database(server_url: str) -> None:
    conn = await asyncpg.connect(plain(server_url))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    finally:
        await conn.close()


async def database_exists(server_url: str) -> bool:
    conn = await asyncpg.connect(plain(server_url))
    try:
        found = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE)
        return found is not None
    finally:
        await conn.close()


def migrate(url: str) -> None:
    config = alembic_config()
    config.attributes["url"] = url
    command.upgrade(config, "head")


async def timed(conn: asyncpg.Connection, label: str, sql: str, *args: Any) -> None:
    start = time.perf_counter()
    status = await conn.execute(sql, *args)
    rows = status.split()[-1] if status and status.split()[-1].isdigit() else ""
    print(f"  {label:<28} {rows:>9} rows  {time.perf_counter() - start:6.1f} s")


@dataclass
class Fixture:
    """What the load needs from the data: sampled clients and the quota to measure."""

    clients: list[tuple[str, str]]  # (client id, its primary manager id)
    quota_id: str


async def load(url: str, settings: Settings) -> None:
    calendar = FiscalCalendar(settings.org.time_zone, settings.org.fiscal_year_start_month)
    now = datetime.now(UTC)
    this_quarter = calendar.containing(now, PeriodKind.quarter)
    last_quarter = calendar.containing(this_quarter.start - timedelta(days=1), PeriodKind.quarter)
    print("Loading (set-based SQL):")
    conn = await asyncpg.connect(plain(url))
    try:
        await conn.execute("SET statement_timeout = 0")
        async with conn.transaction():
            await conn.execute("SELECT setseed(0.42)")
            await timed(conn, "managers", MANAGERS_SQL)
            await timed(conn, "clients", CLIENTS_SQL, CLIENTS)
            await timed(conn, "client plan (temp)", PLAN_SQL)
            await timed(conn, "assignments (primary)", ASSIGNMENTS_SQL)
            await timed(conn, "interactions", INTERACTIONS_SQL, CLIENTS, INTERACTIONS)
            await timed(conn, "complaints", COMPLAINTS_SQL, CLIENTS, COMPLAINTS)
            await timed(conn, "complaint_transitions", TRANSITIONS_SQL)
            manager = await conn.fetchval(QUOTA_MANAGER_SQL)
            await timed(conn, "sales (one manager)", SALES_SQL, manager, SALES)
            for label, metric, period, amount, count in (
                ("quota: sales, this quarter", "sales_amount", this_quarter, 900_000, None),
                ("quota: sales, last quarter", "sales_amount", last_quarter, 900_000, None),
                ("quota: interactions, now", "interaction_count", this_quarter, None, 400),
            ):
                start = time.perf_counter()
                await conn.fetchval(
                    QUOTA_SQL,
                    manager,
                    metric,
                    period.label,
                    period.start,
                    period.end,
                    amount,
                    "EUR" if amount else None,
                    count,
                )
                print(f"  {label:<28} {1:>9} rows  {time.perf_counter() - start:6.1f} s")
        start = time.perf_counter()
        # VACUUM too: a live table is mostly all-visible with hint bits set.
        await conn.execute("VACUUM (ANALYZE)")
        print(f"  {'VACUUM (ANALYZE)':<28} {'':>9}       {time.perf_counter() - start:6.1f} s")
    finally:
        await conn.close()


async def fixture(url: str) -> Fixture:
    conn = await asyncpg.connect(plain(url))
    try:
        rows = await conn.fetch(
            "SELECT c.id, a.manager_id FROM clients AS c"
            " JOIN assignments AS a ON a.client_id = c.id AND a.role = 'primary'"
            " AND a.ends_at IS NULL ORDER BY random() LIMIT $1::int",
            SAMPLE_IDS,
        )
        quota = await conn.fetchval(
            "SELECT id FROM quotas WHERE metric = 'sales_amount'"
            " AND period_start <= now() AND period_end > now() LIMIT 1"
        )
    finally:
        await conn.close()
    if not rows or quota is None:
        raise SystemExit(f"{DATABASE} has no data: run without --reuse.")
    return Fixture([(str(r["id"]), str(r["manager_id"])) for r in rows], str(quota))


async def set_statement_logging(url: str, enabled: bool) -> None:
    conn = await asyncpg.connect(plain(url))
    try:
        if enabled:
            await conn.execute(f"ALTER DATABASE \"{DATABASE}\" SET log_statement = 'all'")
        else:
            await conn.execute(f'ALTER DATABASE "{DATABASE}" RESET log_statement')
    finally:
        await conn.close()


# ------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    """A server subprocess (its stdout and stderr go to a log file in the work folder)."""

    name: str
    argv: list[str]
    env: dict[str, str]
    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout_s: float = 60.0) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.argv, env=self.env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start; see {self.log}")
            try:
                if httpx.get(f"{self.base}/health/live", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not start in {timeout_s:.0f} s; see {self.log}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            self.process = None
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


def servers(url: str, log_level: str) -> tuple[Server, Server]:
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "LOG_LEVEL": log_level,
        "RULES__SCHEDULE_INTERVAL_S": "0",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("MIGRATE_ON_START", None)
    service_port, baseline_port = free_port(), free_port()
    service = Server(
        "service",
        [str(BIN / "ams"), "serve", "--host", "127.0.0.1", "--port", str(service_port)]
        + ["--no-migrate"],
        env,
        service_port,
        WORKDIR / "service.log",
    )
    baseline = Server(
        "baseline",
        [str(BIN / "python"), str(ROOT / "bench" / "baseline_app.py")]
        + ["--host", "127.0.0.1", "--port", str(baseline_port)],
        env,
        baseline_port,
        WORKDIR / "baseline.log",
    )
    return service, baseline


# ----------------------------------------------------------------------- endpoints


@dataclass(frozen=True)
class Endpoint:
    key: str  # the Lua script's mode
    label: str
    kind: str  # read, list, write or baseline
    ratio_target: float | None
    p99_target_ms: float


READ = Endpoint("read", "GET /v1/clients/{id}", "read", 0.5, 15.0)
ENDPOINTS = [
    READ,
    Endpoint("list", "GET /v1/clients?segment=key&limit=50", "list", 0.3, 15.0),
    Endpoint("search", "GET /v1/clients?q=<3 letters>&limit=50", "list", 0.3, 15.0),
    Endpoint("create", "POST /v1/interactions (admin)", "write", 0.3, 30.0),
    Endpoint("timeline", "GET /v1/clients/{id}/timeline?limit=50", "list", 0.3, 15.0),
    Endpoint("attainment", "GET /v1/quotas/{id}/attainment", "list", 0.3, 15.0),
]
BASELINE = Endpoint("baseline", "baseline GET /clients/{id} (raw asyncpg)", "baseline", None, 15.0)


def utc_text(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def interaction_body(client_id: str, manager_id: str, minutes_ago: int) -> str:
    now = datetime.now(UTC)
    return json.dumps(
        {
            "client_id": client_id,
            "manager_id": manager_id,
            "channel": "phone",
            "direction": "outbound",
            "occurred_at": utc_text(now - timedelta(minutes=minutes_ago)),
            "duration_minutes": 25,
            "subject": "Quarterly review call",
            "notes": "Discussed renewal terms and the open support ticket.",
            "sentiment": "neutral",
            "decisions": ["Send the revised offer"],
            "next_step": {
                "description": "Follow up on the offer",
                "due_at": utc_text(now + timedelta(days=7)),
            },
        }
    )


def request_for(ep: Endpoint, fx: Fixture, i: int) -> tuple[str, str, str | None]:
    """Method, path and body of the ``i``-th request to ``ep`` (as the Lua script does)."""
    client_id, manager_id = fx.clients[i % len(fx.clients)]
    term = urllib.parse.quote(SEARCH_TERMS[i % len(SEARCH_TERMS)])
    paths = {
        "baseline": f"/clients/{client_id}",
        "read": f"/v1/clients/{client_id}",
        "list": "/v1/clients?segment=key&limit=50",
        "search": f"/v1/clients?q={term}&limit=50",
        "timeline": f"/v1/clients/{client_id}/timeline?limit=50",
        "attainment": f"/v1/quotas/{fx.quota_id}/attainment",
    }
    if ep.key == "create":
        return "POST", "/v1/interactions", interaction_body(client_id, manager_id, 60 + i)
    return "GET", paths[ep.key], None


LUA = r"""
-- wrk script of bench/http_load.py. Arguments: mode, token, ids file, quota id, search terms.
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
end

function init(args)
  mode, token, quota = args[1], args[2], args[4]
  clients, managers, terms = {}, {}, {}
  for line in io.lines(args[3]) do
    local c, m = line:match("([^,]+),([^,]+)")
    clients[#clients + 1] = c
    managers[#managers + 1] = m
  end
  for t in string.gmatch(args[5], "[^,]+") do terms[#terms + 1] = t end
  math.randomseed(os.time() + 7919 * (tid or 0))
  for _ = 1, 10 do math.random() end
  get_headers = {["Authorization"] = "Bearer " .. token}
  post_headers = {["Authorization"] = "Bearer " .. token,
                  ["Content-Type"] = "application/json"}
end

local function utc(t) return os.date("!%Y-%m-%dT%H:%M:%SZ", t) end

function request()
  local i = math.random(#clients)
  local id = clients[i]
  if mode == "baseline" then
    return wrk.format("GET", "/clients/" .. id, {})
  elseif mode == "read" then
    return wrk.format("GET", "/v1/clients/" .. id, get_headers)
  elseif mode == "list" then
    return wrk.format("GET", "/v1/clients?segment=key&limit=50", get_headers)
  elseif mode == "search" then
    return wrk.format("GET", "/v1/clients?q=" .. terms[math.random(#terms)] .. "&limit=50",
                      get_headers)
  elseif mode == "timeline" then
    return wrk.format("GET", "/v1/clients/" .. id .. "/timeline?limit=50", get_headers)
  elseif mode == "attainment" then
    return wrk.format("GET", "/v1/quotas/" .. quota .. "/attainment", get_headers)
  elseif mode == "create" then
    local now = os.time()
    local body = string.format(
      '{"client_id":"%s","manager_id":"%s","channel":"phone","direction":"outbound",' ..
      '"occurred_at":"%s","duration_minutes":%d,"subject":"Quarterly review call",' ..
      '"notes":"Discussed renewal terms and the open support ticket.",' ..
      '"sentiment":"neutral","decisions":["Send the revised offer"],' ..
      '"next_step":{"description":"Follow up on the offer","due_at":"%s"}}',
      id, managers[i], utc(now - math.random(60, 30 * 86400)), math.random(5, 90),
      utc(now + 7 * 86400))
    return wrk.format("POST", "/v1/interactions", post_headers, body)
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"p50_us":%.0f,"p90_us":%.0f,' ..
    '"p99_us":%.0f,"mean_us":%.1f,"max_us":%.0f,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.mean, latency.max, e.connect, e.read, e.write, e.status,
    e.timeout))
end
"""


@dataclass
class Measured:
    endpoint: Endpoint
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    load: float  # 1-minute load average when the run ended
    extra: dict[str, float] = field(default_factory=dict)
    ratio: float | None = None  # req/s over the baseline runs around it


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux ``/proc``)."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = data[data.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class DbUsage:
    """CPU time of the Postgres backends connected to the bench database (by pid) and
    the number of sessions ever opened to it."""

    cpu: dict[int, float]
    sessions: int

    def cpu_since(self, earlier: DbUsage) -> float:
        """CPU spent since ``earlier`` by the backends alive now (a backend that ended in
        between is missed: an underestimate when connections churn)."""
        return sum(t - earlier.cpu.get(pid, 0.0) for pid, t in self.cpu.items())


async def db_usage(url: str) -> DbUsage:
    conn = await asyncpg.connect(plain(url))
    try:
        pids = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            DATABASE,
        )
        sessions = await conn.fetchval(
            "SELECT sessions FROM pg_stat_database WHERE datname = $1", DATABASE
        )
    finally:
        await conn.close()
    return DbUsage({r["pid"]: cpu_seconds(r["pid"]) for r in pids}, int(sessions or 0))


@dataclass
class LoadGen:
    url: str
    token: str
    fx: Fixture
    lua: Path
    ids: Path
    threads: int
    connections: int

    def wrk_argv(self, base: str, ep: Endpoint, seconds: float) -> list[str]:
        terms = ",".join(urllib.parse.quote(t) for t in SEARCH_TERMS)
        return [
            "wrk",
            f"-t{self.threads}",
            f"-c{self.connections}",
            f"-d{seconds:.0f}s",
            "--timeout",
            "10s",
            "-s",
            str(self.lua),
            base,
            "--",
            ep.key,
            self.token,
            str(self.ids),
            self.fx.quota_id,
            terms,
        ]

    def saturate(self, server: Server, ep: Endpoint, seconds: float, warmup: float) -> Measured:
        if warmup > 0:
            subprocess.run(self.wrk_argv(server.base, ep, warmup), capture_output=True, check=True)
        before = asyncio.run(db_usage(self.url))
        cpu_before = cpu_seconds(server.pid)
        done = subprocess.run(
            self.wrk_argv(server.base, ep, seconds), capture_output=True, text=True, check=True
        )
        cpu = cpu_seconds(server.pid) - cpu_before
        after = asyncio.run(db_usage(self.url))
        line = next((x for x in done.stdout.splitlines() if x.startswith("BENCH_RESULT ")), None)
        if line is None:
            raise RuntimeError(f"wrk printed no result:\n{done.stdout}\n{done.stderr}")
        r = json.loads(line.removeprefix("BENCH_RESULT "))
        errors = sum(r[k] for k in ("connect", "read", "write", "status", "timeout"))
        return Measured(
            ep,
            r["requests"],
            r["requests"] / (r["duration_us"] / 1e6),
            r["p50_us"] / 1000,
            r["p99_us"] / 1000,
            r["max_us"] / 1000,
            errors,
            os.getloadavg()[0],
            {
                "cpu_ms": 1000 * cpu / max(r["requests"], 1),
                "pg_cpu_ms": 1000 * after.cpu_since(before) / max(r["requests"], 1),
                "sessions": after.sessions - before.sessions,
            },
        )

    def fixed_rate(
        self, base: str, ep: Endpoint, seconds: float, workers: int, per_worker: float
    ) -> Measured:
        method, path, body = request_for(ep, self.fx, 0)
        argv = ["hey", "-z", f"{seconds:.0f}s", "-c", str(workers), "-q", f"{per_worker:g}"]
        argv += ["-o", "csv", "-t", "10", "-H", f"Authorization: Bearer {self.token}"]
        if body is not None:
            argv += ["-m", method, "-T", "application/json", "-d", body]
        done = subprocess.run(argv + [base + path], capture_output=True, text=True, check=True)
        times: list[float] = []
        errors = 0
        for row in csv.DictReader(done.stdout.splitlines()):
            times.append(float(row["response-time"]) * 1000)
            if not row["status-code"].startswith("2"):
                errors += 1
        if len(times) < 2:
            raise RuntimeError(f"hey measured nothing:\n{done.stdout[:2000]}\n{done.stderr}")
        cuts = statistics.quantiles(times, n=100, method="inclusive")
        return Measured(
            ep,
            len(times),
            len(times) / seconds,
            statistics.median(times),
            cuts[98],
            max(times),
            errors,
            os.getloadavg()[0],
        )


# ------------------------------------------------------------------ SQL per request

LOG_LINE = re.compile(
    r"\[(?P<pid>\d+)\] [^@\s]*@(?P<db>\S+) LOG:  (?:statement|execute [^:]*): (?P<sql>.*)$"
)
PRE_PING = "pre-ping (BEGIN, ';', ROLLBACK)"
MARKER = re.compile(r"SELECT 'ams-bench-http:(?P<edge>begin|end):(?P<key>\w+)'")


def classify(sql: str) -> str:
    text = sql.strip().rstrip(";").strip().upper()
    if text == "":
        return "empty query ';'"
    if text.startswith("BEGIN"):
        return "BEGIN"
    if text.startswith(("COMMIT", "ROLLBACK")):
        return text.split()[0]
    if "PG_ADVISORY_UNLOCK_ALL" in text or text.startswith("RESET ALL"):
        return "pool reset (asyncpg)"
    words = text.split()
    first = words[0]
    if first == "SELECT" and "FROM" in words:
        table = words[words.index("FROM") + 1].lower()
        return f"SELECT ... FROM {table}"
    if first == "INSERT" and len(words) > 2:
        return f"INSERT INTO {words[2].lower()}"
    return first


async def marker(url: str, edge: str, key: str) -> None:
    conn = await asyncpg.connect(plain(url))
    try:
        await conn.execute(f"SELECT 'ams-bench-http:{edge}:{key}'")
    finally:
        await conn.close()


def count_statements(
    url: str, service: Server, baseline: Server, gen: LoadGen, pg_log: Path
) -> dict[str, Counter[str]]:
    """Send each endpoint's request ``COUNT_CALLS`` times (after 2 warm-ups) between two
    marker statements and count what Postgres logged for the bench database in between.
    Also checks every endpoint answers 2xx."""
    readable = os.access(pg_log, os.R_OK)
    offset = pg_log.stat().st_size if readable else 0
    headers = {"Authorization": f"Bearer {gen.token}", "Content-Type": "application/json"}
    with httpx.Client(timeout=30, headers=headers) as http:
        for ep in [*ENDPOINTS, BASELINE]:
            base = baseline.base if ep is BASELINE else service.base
            for i in range(2 + COUNT_CALLS):
                if i == 2 and readable:
                    asyncio.run(marker(url, "begin", ep.key))
                method, path, body = request_for(ep, gen.fx, i)
                response = http.request(method, base + path, content=body)
                if response.status_code // 100 != 2:
                    raise RuntimeError(
                        f"{method} {path} answered {response.status_code}: {response.text[:800]}"
                    )
            if readable:
                asyncio.run(marker(url, "end", ep.key))
    counts: dict[str, Counter[str]] = {}
    if not readable:
        print(f"  {pg_log} is not readable: statements not counted (use --pg-log).")
        return counts
    time.sleep(0.5)
    # (endpoint, backend pid, statement); a statement's further lines start with a tab.
    logged: list[tuple[str | None, str, str]] = []
    current: str | None = None
    with pg_log.open("rb") as fh:
        fh.seek(offset)
        for raw in fh:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if line.startswith("\t") and logged:
                key, pid, sql = logged[-1]
                logged[-1] = (key, pid, sql + " " + line.strip())
                continue
            found = LOG_LINE.search(line)
            if found is None or found["db"] != DATABASE:
                continue
            edge = MARKER.search(found["sql"])
            if edge is not None:
                current = edge["key"] if edge["edge"] == "begin" else None
                continue
            logged.append((current, found["pid"], found["sql"]))
    # pool_pre_ping is BEGIN, an empty query ';' (which Postgres does not log), ROLLBACK.
    last: dict[str, int] = {}
    kinds: list[str] = []
    for n, (_, pid, sql) in enumerate(logged):
        kind = classify(sql)
        previous = last.get(pid)
        if kind == "ROLLBACK" and previous is not None and kinds[previous] == "BEGIN":
            kinds[previous] = ""
            kind = PRE_PING
        kinds.append(kind)
        last[pid] = n
    for (key, _, _), kind in zip(logged, kinds, strict=True):
        if key is not None and kind:
            counts.setdefault(key, Counter())[kind] += 1
    return counts


def print_statement_counts(counts: dict[str, Counter[str]]) -> None:
    if not counts:
        return
    print(
        f"\nSQL round trips per request (mean of {COUNT_CALLS} requests; a pre-ping is three:"
        " BEGIN, ';' and ROLLBACK):"
    )
    for ep in [*ENDPOINTS, BASELINE]:
        found = counts.get(ep.key, Counter())
        trips = sum(3 * n if kind == PRE_PING else n for kind, n in found.items())
        parts = ", ".join(
            f"{n / COUNT_CALLS:g}x {kind}" for kind, n in sorted(found.items(), key=lambda x: -x[1])
        )
        print(f"  {ep.label:<44} {trips / COUNT_CALLS:4.1f}: {parts}")
    print(
        "  (from log_statement = 'all'; the Parse of a statement not yet in asyncpg's"
        " per-connection cache would be one more round trip, not logged)"
    )


# ------------------------------------------------------------------------- profile


@dataclass(frozen=True)
class Frame:
    func: str
    file: str


FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")
LOOP = "event loop + uvicorn/httptools HTTP"
LAYERS: dict[str, str] = {
    "uvicorn": LOOP,
    "httptools": LOOP,
    "asyncio": LOOP,
    "selectors": LOOP,
    "socket": LOOP,
    "contextvars": LOOP,
    "asgi_correlation_id": "middleware: request id (asgi-correlation-id)",
    "prometheus_fastapi_instrumentator": "middleware: Prometheus instrumentator",
    "prometheus_client": "middleware: Prometheus instrumentator",
    "structlog": "access log: structlog processors + logging",
    "logging": "access log: structlog processors + logging",
    "starlette": "Starlette/FastAPI: routing, DI, request/response",
    "fastapi": "Starlette/FastAPI: routing, DI, request/response",
    "anyio": "Starlette/FastAPI: routing, DI, request/response",
    "jwt": "auth: HTTPBearer + PyJWT + claims",
    "sqlalchemy": "SQLAlchemy: session, Core compile, ORM, pool",
    "greenlet": "SQLAlchemy: session, Core compile, ORM, pool",
    "asyncpg": "asyncpg driver (protocol, codecs)",
    "pydantic": "pydantic: validation / serialisation",
    "pydantic_core": "pydantic: validation / serialisation",
}
APP_LAYERS = {
    "app/core/auth.py": "auth: HTTPBearer + PyJWT + claims",
    "app/core/observability.py": "access log: structlog processors + logging",
    "app/core/schemas.py": "pydantic: validation / serialisation",
    "app/core/money.py": "pydantic: validation / serialisation",
}


def parse_frame(text: str) -> Frame:
    found = FRAME.match(text)
    if found is None:
        return Frame(text, "")
    path = found["file"]
    marker_at = path.find("site-packages/")
    if marker_at >= 0:
        path = path[marker_at + len("site-packages/") :]
    elif "/app/" in path:
        path = path[path.index("/app/") + 1 :]
    elif "/lib/python3" in path:
        path = path.split("/lib/python3", 1)[1].split("/", 1)[-1]
    return Frame(found["func"], path)


def layer_of(frame: Frame) -> str | None:
    """The layer a frame belongs to; ``None`` for a standard-library frame (attributed to
    its caller)."""
    if frame.file.startswith("app/"):
        return APP_LAYERS.get(frame.file, "app code (routers, repositories, services)")
    top = frame.file.split("/", 1)[0].removesuffix(".py")
    if top in LAYERS:
        return LAYERS[top]
    if top in sys.stdlib_module_names or top.startswith("<frozen") or top == "":
        return None
    return f"other: {top}"


Predicate = Callable[[Frame], bool]


def in_file(prefix: str, *funcs: str) -> Predicate:
    """Frames of files under ``prefix`` (and, if given, functions or methods named so)."""

    def matches(f: Frame) -> bool:
        if not f.file.startswith(prefix):
            return False
        return not funcs or f.func in funcs or f.func.rsplit(".", 1)[-1] in funcs

    return matches


def any_of(*predicates: Predicate) -> Predicate:
    return lambda f: any(p(f) for p in predicates)


# Inclusive time of operations (a sample counts once if any frame of its stack matches).
OPERATIONS: list[tuple[str, Predicate]] = [
    ("auth dependency (get_principal: bearer, PyJWT, claims)", in_file("app/core/auth.py")),
    ("  of which PyJWT (header + decode + claim checks)", in_file("jwt/")),
    ("session dependency (get_session: open, commit, close)", in_file("app/core/session.py")),
    ("pool_pre_ping on checkout (BEGIN; ';'; ROLLBACK)", in_file("sqlalchemy/", "_async_ping")),
    ("BEGIN of the request's transaction", in_file("sqlalchemy/", "_start_transaction")),
    ("AsyncSession.execute (all of it)", in_file("sqlalchemy/ext/asyncio/session.py", "execute")),
    (
        "  of which compile / cache key",
        in_file("sqlalchemy/sql/", "_compile_w_cache", "_generate_cache_key"),
    ),
    ("  of which ORM result loading", in_file("sqlalchemy/orm/loading.py")),
    ("AsyncSession.commit (COMMIT)", in_file("sqlalchemy/ext/asyncio/session.py", "commit")),
    ("AsyncSession.close", in_file("sqlalchemy/ext/asyncio/session.py", "close")),
    ("asyncpg (all calls)", in_file("asyncpg/")),
    (
        "building the select (visible(), where)",
        any_of(in_file("app/clients/repository.py", "visible"), in_file("app/assignments/")),
    ),
    ("ClientRead.model_validate (ReadModel + UTC validator)", in_file("pydantic/main.py")),
    (
        "FastAPI serialize_response (response_model)",
        in_file("fastapi/routing.py", "serialize_response"),
    ),
    ("FastAPI solve_dependencies (params + deps)", in_file("fastapi/dependencies/utils.py")),
    (
        "FastAPI per-request route/dependency bookkeeping",
        any_of(
            in_file("fastapi/dependencies/models.py"),
            in_file("fastapi/routing.py", "_get_routes_version"),
        ),
    ),
    ("sending the response (Response.__call__)", in_file("starlette/responses.py", "__call__")),
    ("  of which socket write (transport.write)", in_file("asyncio/selector_events.py", "write")),
    ("access log line (structlog, even below LOG_LEVEL)", in_file("structlog/")),
    (
        "Prometheus: route-name lookup per request",
        in_file("prometheus_fastapi_instrumentator/", "_get_handler"),
    ),
    (
        "Prometheus: metric updates",
        any_of(
            in_file("prometheus_fastapi_instrumentator/metrics.py"),
            in_file("prometheus_client/"),
        ),
    ),
]


def analyse_profile(raw: Path) -> None:
    samples: list[tuple[list[Frame], int]] = []
    for line in raw.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples.append(([parse_frame(f) for f in stack.split(";")], int(count)))
    total = sum(n for _, n in samples)
    if total == 0:
        print("  py-spy recorded no samples.")
        return
    by_layer: Counter[str] = Counter()
    for frames, n in samples:
        layer = next((x for x in map(layer_of, reversed(frames)) if x is not None), None)
        by_layer[layer or "interpreter / standard library"] += n
    print(f"\n  Self time by layer ({total} samples of the service process, idle excluded):")
    for layer, n in by_layer.most_common():
        print(f"    {100 * n / total:5.1f} %  {layer}")
    print("\n  Inclusive time of operations (share of all samples):")
    for label, matches in OPERATIONS:
        n = sum(c for frames, c in samples if any(matches(f) for f in frames))
        print(f"    {100 * n / total:5.1f} %  {label}")
    inside: Counter[str] = Counter()
    for frames, n in samples:
        start = next(
            (i for i, f in enumerate(frames) if f.func.endswith("run_endpoint_function")), None
        )
        if start is not None:
            for name in {f"{f.func} ({f.file})" for f in frames[start + 1 :]}:
                inside[name] += n
    print("\n  Inside the endpoint function (inclusive, share of all samples):")
    for name, n in inside.most_common(20):
        print(f"    {100 * n / total:5.1f} %  {name}")
    leaf: Counter[str] = Counter()
    for frames, n in samples:
        f = frames[-1]
        leaf[f"{f.func} ({f.file})"] += n
    print("\n  Hottest leaf functions:")
    for name, n in leaf.most_common(15):
        print(f"    {100 * n / total:5.1f} %  {name}")


def profile(service: Server, gen: LoadGen, ep: Endpoint, seconds: float) -> None:
    py_spy = BIN / "py-spy"
    if not py_spy.exists():
        found = shutil.which("py-spy")
        if found is None:
            print("\npy-spy is not installed (.venv/bin/pip install py-spy): no profile.")
            return
        py_spy = Path(found)
    raw, svg = WORKDIR / f"profile-{ep.key}.txt", WORKDIR / f"profile-{ep.key}.svg"
    print(f"\nProfile of {ep.label} under saturation (py-spy, {seconds:.0f} s, 32 conns):")
    for fmt, out in (("raw", raw), ("flamegraph", svg)):
        load = subprocess.Popen(
            gen.wrk_argv(service.base, ep, seconds + 4),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(2)
            subprocess.run(
                [str(py_spy), "record", "--pid", str(service.pid), "--duration"]
                + [f"{seconds:.0f}", "--rate", "250", "--format", fmt, "-o", str(out)],
                capture_output=True,
                check=True,
            )
        finally:
            load.wait()
    analyse_profile(raw)
    print(f"\n  Flame graph: {svg}; raw stacks: {raw}")


# -------------------------------------------------------------------------- report


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISS"


def print_saturation(runs: list[Measured]) -> None:
    print(
        "\nSaturation (wrk, 32 connections). 'x base' = req/s over the baseline runs around it;"
        "\n'x base CPU' = the baseline's server CPU per request over this one's (what the"
        "\nreq/s ratio would be with a core to itself); CPU ms/req of the server process and"
        "\nof the database's backends; new DB sessions opened during the run:"
    )
    print(
        f"  {'endpoint':<44} {'req/s':>6} {'p50':>6} {'p99':>6} {'p99/':>5} {'err':>4}"
        f" {'load':>4} {'srv ms':>6} {'pg ms':>5} {'new':>4} {'x base':>6} {'x CPU':>6}"
        f" {'target':>6}"
    )
    print(
        f"  {'':<44} {'':>6} {'ms':>6} {'ms':>6} {'p50':>5} {'':>4} {'':>4} {'/req':>6}"
        f" {'/req':>5} {'sess':>4}"
    )
    for r in runs:
        target = r.endpoint.ratio_target
        tail = ""
        if r.ratio is not None and target is not None:
            tail = (
                f" {r.ratio:6.2f} {r.extra['cpu_ratio']:6.2f} {f'>={target:g}':>6}"
                f" {verdict(r.ratio >= target)}/{verdict(r.extra['cpu_ratio'] >= target)}"
            )
        print(
            f"  {r.endpoint.label:<44} {r.rps:6.0f} {r.p50_ms:6.1f} {r.p99_ms:6.1f}"
            f" {r.p99_ms / r.p50_ms:5.1f} {r.errors:4d} {r.load:4.1f} {r.extra['cpu_ms']:6.2f}"
            f" {r.extra['pg_cpu_ms']:5.2f} {r.extra['sessions']:4.0f}{tail}"
        )


def print_fixed(runs: list[Measured], rate: float, saturation: list[Measured]) -> None:
    print(
        f"\nFixed offered load (hey, {rate:g} req/s, one URL each). 'cap/s' = 1000 / the"
        "\nserver's CPU ms per request at saturation: what one worker could serve with a core"
        "\nto itself; below the offered rate the target cannot be met, whatever the host:"
    )
    print(
        f"  {'endpoint':<44} {'req/s':>6} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7}"
        f" {'err':>4} {'load':>4} {'cap/s':>6} {'target':>9}"
    )
    for r in runs:
        target = r.endpoint.p99_target_ms
        cpu = [x.extra["cpu_ms"] for x in saturation if x.endpoint is r.endpoint]
        cap = 1000 / statistics.fmean(cpu) if cpu else float("nan")
        behind = "  (fell behind the offered rate)" if r.rps < 0.95 * rate else ""
        print(
            f"  {r.endpoint.label:<44} {r.rps:6.0f} {r.p50_ms:7.1f} {r.p99_ms:7.1f}"
            f" {r.max_ms:7.1f} {r.errors:4d} {r.load:4.1f} {cap:6.0f} {f'p99<{target:g}':>9}"
            f" {verdict(r.p99_ms < target)}{behind}"
        )


@contextmanager
def running(*procs: Server) -> Iterator[None]:
    try:
        for p in procs:
            p.start()
        yield
    finally:
        for p in procs:
            p.stop()


def run(url: str, args: argparse.Namespace) -> None:
    settings = Settings(database_url=url)
    token = mint_token(settings, "bench-admin", [Role.admin], ttl_s=6 * 3600)
    fx = asyncio.run(fixture(url))
    ids = WORKDIR / "clients.csv"
    ids.write_text("".join(f"{c},{m}\n" for c, m in fx.clients), encoding="utf-8")
    lua = WORKDIR / "bench.lua"
    lua.write_text(LUA, encoding="utf-8")
    gen = LoadGen(url, token, fx, lua, ids, args.threads, args.connections)
    print(
        f"\nHost: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} (the load"
        " generator, both servers and Postgres share them; so may other work)."
    )
    print(
        f"Servers: service = ams serve --no-migrate, LOG_LEVEL={args.log_level},"
        " RULES__SCHEDULE_INTERVAL_S=0; baseline = bench/baseline_app.py; one uvicorn"
        f" process each. Logs in {WORKDIR}."
    )

    print("\nSQL per request (log_statement = 'all' on the bench database, fresh servers):")
    asyncio.run(set_statement_logging(url, True))
    try:
        service, baseline = servers(url, args.log_level)
        with running(service, baseline):
            counts = count_statements(url, service, baseline, gen, Path(args.pg_log))
    finally:
        asyncio.run(set_statement_logging(url, False))
    print_statement_counts(counts)

    service, baseline = servers(url, args.log_level)
    with running(service, baseline):
        print(
            f"\nSaturation runs: {args.warmup:g} s warm-up + {args.duration:g} s each,"
            f" {args.connections} connections, {args.threads} wrk threads ..."
        )
        order: list[Endpoint] = [BASELINE]
        for i, ep in enumerate(ENDPOINTS):
            order.append(ep)
            if i % 2 == 1 or i == len(ENDPOINTS) - 1:
                order.append(BASELINE)
        runs: list[Measured] = []
        for ep in order:
            r = gen.saturate(
                baseline if ep is BASELINE else service, ep, args.duration, args.warmup
            )
            print(
                f"  {ep.label:<44} {r.rps:6.0f} req/s  p50 {r.p50_ms:6.1f}  p99 {r.p99_ms:6.1f}"
                f"  server CPU {r.extra['cpu_ms']:5.2f} ms/req  load {r.load:4.1f}"
            )
            runs.append(r)
        for i, r in enumerate(runs):
            if r.endpoint is BASELINE:
                continue
            before = next(x for x in reversed(runs[:i]) if x.endpoint is BASELINE)
            after = next(x for x in runs[i + 1 :] if x.endpoint is BASELINE)
            r.ratio = r.rps / ((before.rps + after.rps) / 2)
            base_cpu = (before.extra["cpu_ms"] + after.extra["cpu_ms"]) / 2
            r.extra["cpu_ratio"] = base_cpu / r.extra["cpu_ms"] if r.extra["cpu_ms"] else 0.0

        workers = 10
        print(
            f"\nFixed-rate runs: {args.rate:g} req/s ({workers} workers),"
            f" {args.duration:g} s each ..."
        )
        fixed: list[Measured] = []
        for ep in [*ENDPOINTS, BASELINE]:
            base = baseline.base if ep is BASELINE else service.base
            fixed.append(gen.fixed_rate(base, ep, args.duration, workers, args.rate / workers))

        read_ratio = next((r.ratio for r in runs if r.endpoint is READ), None) or 0.0
        if args.profile == "all":
            for ep in ENDPOINTS:
                profile(service, gen, ep, args.duration)
        elif args.profile == "always" or (
            args.profile == "auto" and READ in ENDPOINTS and read_ratio < 0.5
        ):
            profile(service, gen, READ, args.duration)

    print_saturation(runs)
    baselines = [r.rps for r in runs if r.endpoint is BASELINE]
    print(
        f"  baseline runs: {', '.join(f'{x:.0f}' for x in baselines)} req/s; each ratio is to"
        " the mean of the baseline runs just before and after it"
    )
    print_fixed(fixed, args.rate, runs)
    print("\nAt saturation p99 <= 3x p50:")
    for r in runs:
        if r.endpoint is not BASELINE:
            ok = r.p99_ms <= 3 * r.p50_ms
            print(f"  {r.endpoint.label:<44} {r.p99_ms / r.p50_ms:5.1f}x  {verdict(ok)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--keep", action="store_true", help=f"do not drop {DATABASE} at the end")
    parser.add_argument("--reuse", action="store_true", help=f"use a kept {DATABASE} as it is")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run")
    parser.add_argument("--warmup", type=float, default=3.0, help="warm-up seconds per endpoint")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--rate", type=float, default=200.0, help="fixed offered load, req/s")
    parser.add_argument("--log-level", default="WARNING", help="the service's LOG_LEVEL")
    parser.add_argument(
        "--profile",
        choices=["auto", "always", "all", "never"],
        default="auto",
        help="py-spy the read-by-id path (auto: when it is below 0.5x the baseline; all: every"
        " endpoint)",
    )
    parser.add_argument("--pg-log", default=DEFAULT_PG_LOG, help="the Postgres server log")
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated endpoint keys to measure (read, list, search, create, timeline,"
        " attainment); default all",
    )
    args = parser.parse_args()
    if args.only:
        wanted = set(args.only.split(","))
        unknown = wanted - {ep.key for ep in ENDPOINTS}
        if unknown:
            raise SystemExit(f"unknown endpoint keys: {', '.join(sorted(unknown))}")
        ENDPOINTS[:] = [ep for ep in ENDPOINTS if ep.key in wanted]
    for tool in ("wrk", "hey"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed: apt-get install -y wrk hey")
    server_url = os.environ.get("DATABASE_URL", DEFAULT_URL)
    url = make_url(server_url).set(database=DATABASE).render_as_string(hide_password=False)
    shutil.rmtree(WORKDIR, ignore_errors=True)
    WORKDIR.mkdir(parents=True)
    try:
        if args.reuse and asyncio.run(database_exists(server_url)):
            print(f"Reusing {DATABASE} as it is (--reuse).")
        else:
            asyncio.run(recreate_database(server_url))
            start = time.perf_counter()
            migrate(url)
            print(f"Database {DATABASE} migrated to head in {time.perf_counter() - start:.1f} s")
            asyncio.run(load(url, Settings(database_url=url)))
        run(url, args)
    finally:
        if args.keep:
            print(f"\nDatabase {DATABASE} kept (--keep).")
        else:
            asyncio.run(drop_database(server_url))
            print(f"\nDatabase {DATABASE} dropped.")


if __name__ == "__main__":
    main()
