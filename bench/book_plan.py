"""Query plan and latency of the book of business (``GET /v1/managers/{id}/book``).

Run by hand: ``.venv/bin/python bench/book_plan.py``. It (re)creates the database
``ams_bench_book`` on ``DATABASE_URL`` (default ``postgresql://postgres@127.0.0.1:5432/
postgres``), migrates it to head, bulk-inserts 2,000 managers, 100,000 clients and about
185,000 assignments with set-based SQL, ANALYZEs, then prints

* ``EXPLAIN (ANALYZE, BUFFERS)`` of the exact statement the endpoint runs
  (``app.assignments.repository.book_statement`` compiled for the app's postgresql+asyncpg
  dialect) for the manager with the biggest book, once with the values inlined (the
  custom plan) and once as a prepared statement under
  ``plan_cache_mode = force_generic_plan`` (the plan asyncpg's cached prepared statement
  may switch to after five executions);
* mean / p50 / p99 of 200 executions of the statement alone (as the app runs it, with
  ``plan_cache_mode`` auto, force_custom_plan and force_generic_plan), and of 200 calls
  of the endpoint through the ASGI app (httpx), as of now and as of a date.

The data, all reproducible (``setseed``): every client has a primary history of one to
three stints over the last three years (60 % one, 25 % two, 15 % three: handovers),
5 % of them ended (unassigned now), 10 % have a two-week cover (1 % of them running now),
20 % a secondary. Managers are picked by a multiplicative hash, about 50 current clients
each.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
from alembic import command
from httpx import ASGITransport, AsyncClient
from sqlalchemy import text
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.assignments.repository import book_statement
from app.assignments.schemas import BookQuery
from app.config import Environment, Settings
from app.core.auth import Role, mint_token
from app.core.db import create_engine, create_sessionmaker
from app.core.health import alembic_config
from app.core.observability import configure_logging
from app.main import create_app

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DATABASE = "ams_bench_book"
MANAGERS = 2_000
CLIENTS = 100_000
CALLS = 200
WARMUP = 10
PAGE = 50

MANAGERS_SQL = """
INSERT INTO managers (id, email, full_name, role, region, time_zone, active, version,
                      created_at, updated_at, created_by, updated_by)
SELECT gen_random_uuid(), 'bench-' || g || '@example.com', 'Bench Manager ' || g,
       (ARRAY['associate_account_manager', 'account_manager', 'senior_account_manager',
              'team_lead'])[1 + g % 4],
       (ARRAY['EMEA', 'APAC', 'AMER'])[1 + g % 3], 'Europe/Budapest', true, 1,
       now() - interval '4 years', now() - interval '4 years', 'bench', 'bench'
FROM generate_series(1, :managers) AS g
"""

CLIENTS_SQL = """
INSERT INTO clients (id, name, segment, lifecycle_stage, country, currency, version,
                     created_at, updated_at, created_by, updated_by)
SELECT gen_random_uuid(), 'Bench Client ' || g,
       (ARRAY['strategic', 'key', 'enterprise', 'mid_market', 'small'])[1 + g % 5],
       (ARRAY['prospect', 'onboarding', 'active', 'churned'])[1 + g % 4],
       (ARRAY['HU', 'DE', 'AE', 'JP', 'GB'])[1 + g % 5],
       (ARRAY['HUF', 'EUR', 'AED', 'JPY', 'GBP'])[1 + g % 5], 1,
       now() - interval '3 years 30 days' + g * interval '1 second',
       now() - interval '3 years 30 days' + g * interval '1 second', 'bench', 'bench'
FROM generate_series(1, :clients) AS g
"""

# One row per client: its history, drawn once (reproducible after setseed).
PLAN_SQL = """
CREATE TEMP TABLE bench_plan AS
WITH m AS (SELECT array_agg(id ORDER BY email) AS ids FROM managers),
c AS (SELECT id, row_number() OVER (ORDER BY created_at, id) AS n FROM clients),
r AS (
    SELECT c.id AS client_id, c.n,
           date_trunc('second', now() - interval '1 day' - random() * interval '1094 days')
               AS s0,
           random() AS r_stints, random() AS r_h1, random() AS r_h2,
           random() AS r_fate, random() AS r_cover, random() AS r_secondary
    FROM c
),
h AS (
    SELECT r.*,
           CASE WHEN r_stints < 0.15 THEN 3 WHEN r_stints < 0.40 THEN 2 ELSE 1 END AS stints,
           date_trunc('second', s0 + (now() - s0) * (0.3 + 0.3 * r_h1)) AS h1
    FROM r
)
SELECT h.client_id, h.stints, h.s0, h.h1, h.r_fate, h.r_cover, h.r_secondary,
       date_trunc('second', h.h1 + (now() - h.h1) * (0.5 + 0.3 * h.r_h2)) AS h2,
       m.ids[1 + (h.n * 7919) % :managers] AS m1,
       m.ids[1 + (h.n * 7919 + 101) % :managers] AS m2,
       m.ids[1 + (h.n * 7919 + 557) % :managers] AS m3,
       m.ids[1 + (h.n * 7919 + 1000) % :managers] AS m_cover,
       m.ids[1 + (h.n * 7919 + 1500) % :managers] AS m_secondary
FROM h CROSS JOIN m
"""

# The last stint: who, since when; 5 % of clients ended it (unassigned now).
LAST_SQL = """
CREATE TEMP TABLE bench_last AS
SELECT client_id, stints, r_fate, r_cover, r_secondary, m_cover, m_secondary,
       CASE stints WHEN 1 THEN m1 WHEN 2 THEN m2 ELSE m3 END AS manager_id,
       CASE stints WHEN 1 THEN s0 WHEN 2 THEN h1 ELSE h2 END AS since
FROM bench_plan
"""

ASSIGNMENTS_SQL = """
INSERT INTO assignments (id, client_id, manager_id, role, starts_at, ends_at, reason,
                         version, created_at, updated_at, created_by, updated_by)
SELECT gen_random_uuid(), client_id, manager_id, role, starts_at, ends_at, reason, 1,
       starts_at, coalesce(ends_at, starts_at), 'bench', 'bench'
FROM (
    -- Closed stints (handovers).
    SELECT client_id, m1 AS manager_id, 'primary' AS role, s0 AS starts_at,
           h1 AS ends_at, 'onboarding' AS reason
    FROM bench_plan WHERE stints >= 2
    UNION ALL
    SELECT client_id, m2, 'primary', h1, h2, 'handover' FROM bench_plan WHERE stints = 3
    UNION ALL
    -- The last stint: open, or ended for 5 % (churned / unassigned).
    SELECT client_id, manager_id, 'primary', since,
           CASE WHEN r_fate < 0.05
                THEN date_trunc('second', since + (now() - since) * 0.9) END,
           CASE stints WHEN 1 THEN 'onboarding' ELSE 'handover' END
    FROM bench_last
    UNION ALL
    -- Two-week covers inside the (open) last stint; 1 % of clients covered right now.
    SELECT client_id, m_cover, 'cover',
           CASE WHEN r_cover < 0.01 THEN greatest(since, date_trunc('second', now())
                                                           - interval '7 days')
                ELSE date_trunc('second',
                                since + (now() + interval '60 days' - since) * r_cover * 10)
           END,
           CASE WHEN r_cover < 0.01 THEN greatest(since, date_trunc('second', now())
                                                           - interval '7 days')
                ELSE date_trunc('second',
                                since + (now() + interval '60 days' - since) * r_cover * 10)
           END + interval '14 days',
           'absence'
    FROM bench_last WHERE r_fate >= 0.05 AND r_cover < 0.10
    UNION ALL
    SELECT client_id, m_secondary, 'secondary', since, NULL, 'support'
    FROM bench_last WHERE r_fate >= 0.05 AND r_secondary < 0.20
) AS rows
"""

# The manager with the most clients they are responsible for now.
BIGGEST_BOOK_SQL = """
SELECT manager_id, count(*) FROM assignments
WHERE role IN ('primary', 'cover') AND period @> now()
GROUP BY manager_id ORDER BY count(*) DESC, manager_id LIMIT 1
"""


def plain(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def recreate_database(server_url: str) -> None:
    conn = await asyncpg.connect(plain(server_url))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{DATABASE}"')
    finally:
        await conn.close()


def migrate(url: str) -> None:
    config = alembic_config()
    config.attributes["url"] = url
    command.upgrade(config, "head")


async def timed(conn: AsyncConnection, label: str, sql: str, **params: Any) -> int:
    start = time.perf_counter()
    result = await conn.execute(text(sql), params)
    print(f"  {label:<34} {result.rowcount:>8} rows  {time.perf_counter() - start:6.1f} s")
    return int(result.rowcount)


async def load(engine: AsyncEngine) -> None:
    print("Loading (set-based SQL):")
    async with engine.begin() as conn:
        await conn.execute(text("SET LOCAL statement_timeout = 0"))
        await conn.execute(text("SELECT setseed(0.42)"))
        await timed(conn, "managers", MANAGERS_SQL, managers=MANAGERS)
        await timed(conn, "clients", CLIENTS_SQL, clients=CLIENTS)
        await timed(conn, "plan (temp)", PLAN_SQL, managers=MANAGERS)
        await timed(conn, "last stints (temp)", LAST_SQL)
        await timed(conn, "assignments", ASSIGNMENTS_SQL)
        counts = await conn.execute(
            text("SELECT role, count(*) FROM assignments GROUP BY role ORDER BY role")
        )
        print("  by role:", ", ".join(f"{role} {n}" for role, n in counts))
    async with engine.connect() as conn:
        autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await autocommit.execute(text("SET statement_timeout = 0"))
        start = time.perf_counter()
        # VACUUM too: a live table is mostly all-visible with hint bits set.
        await autocommit.execute(text("VACUUM (ANALYZE)"))
        print(f"  {'VACUUM (ANALYZE)':<34} {'':>8}       {time.perf_counter() - start:6.1f} s")


def prepared_sql(dialect: Dialect, manager_id: uuid.UUID, at: datetime) -> tuple[str, list[Any]]:
    """The statement as asyncpg sends it (``$n`` placeholders) and its parameters."""
    compiled = book_statement(manager_id, at, BookQuery(limit=PAGE)).compile(dialect=dialect)
    names = compiled.positiontup or []
    return str(compiled), [compiled.params[name] for name in names]


def inline(sql: str, params: list[Any]) -> str:
    """``sql`` with ``$n`` replaced by literal values, keeping the bind casts
    (``$2::TIMESTAMP WITH TIME ZONE``). Plain ``literal_binds`` compilation drops those
    casts, and ``period @> '<instant>'`` is then parsed as a range: invalid SQL."""
    for n in range(len(params), 0, -1):
        sql = sql.replace(f"${n}", sql_literal(params[n - 1]))
    return sql


def sql_literal(value: Any) -> str:
    if isinstance(value, datetime):
        return f"'{value.isoformat()}'"
    if isinstance(value, (int, float)):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


async def explain(engine: AsyncEngine, url: str, manager_id: uuid.UUID, at: datetime) -> None:
    prepared, params = prepared_sql(engine.dialect, manager_id, at)
    sql = inline(prepared, params)
    print("\nStatement (as the endpoint sends it, values inlined):\n" + sql)
    generic = (
        "EXPLAIN (ANALYZE, BUFFERS) EXECUTE bench_book("
        + ", ".join(sql_literal(p) for p in params)
        + ")"
    )
    conn = await asyncpg.connect(plain(url))
    try:
        for label, setup, query in (
            ("custom plan (literal values)", [], f"EXPLAIN (ANALYZE, BUFFERS) {sql}"),
            (
                "generic plan (prepared, plan_cache_mode = force_generic_plan)",
                ["SET plan_cache_mode = force_generic_plan", f"PREPARE bench_book AS {prepared}"],
                generic,
            ),
        ):
            for statement in setup:
                await conn.execute(statement)
            for _ in range(2):  # the second run shows a warm cache
                rows = await conn.fetch(query)
            print(f"\nEXPLAIN (ANALYZE, BUFFERS), {label}, second run:")
            print("\n".join(str(r[0]) for r in rows))
    finally:
        await conn.close()


def summary(durations: list[float]) -> str:
    cuts = statistics.quantiles(durations, n=100, method="inclusive")
    return (
        f"mean {statistics.fmean(durations):6.2f} ms, p50 {statistics.median(durations):6.2f} ms,"
        f" p99 {cuts[98]:6.2f} ms, max {max(durations):6.2f} ms"
    )


async def time_query(engine: AsyncEngine, manager_id: uuid.UUID, mode: str) -> None:
    """The statement alone, executed like the app does (SQLAlchemy on asyncpg, whose
    prepared statements PostgreSQL plans custom five times, then maybe generic)."""
    durations: list[float] = []
    async with engine.connect() as conn:
        await conn.execute(text(f"SET plan_cache_mode = {mode}"))
        for i in range(WARMUP + CALLS):
            stmt = book_statement(manager_id, datetime.now(UTC), BookQuery(limit=PAGE))
            start = time.perf_counter()
            rows = (await conn.execute(stmt)).all()
            if i >= WARMUP:
                durations.append((time.perf_counter() - start) * 1000)
        await conn.execute(text("RESET plan_cache_mode"))
        await conn.rollback()
    print(f"  statement, plan_cache_mode={mode:<19} {len(rows)} rows: {summary(durations)}")


async def time_endpoint(
    settings: Settings, engine: AsyncEngine, manager_id: uuid.UUID, params: dict[str, str]
) -> None:
    app = create_app(settings)
    app.state.engine = engine
    app.state.sessionmaker = create_sessionmaker(engine)
    token = mint_token(settings, "bench", [Role.admin])
    durations: list[float] = []
    async with AsyncClient(
        transport=ASGITransport(app=app),
        base_url="http://bench",
        headers={"Authorization": f"Bearer {token}"},
    ) as http:
        url = f"/v1/managers/{manager_id}/book"
        size = 0
        for i in range(WARMUP + CALLS):
            start = time.perf_counter()
            response = await http.get(url, params=params)
            elapsed = time.perf_counter() - start
            response.raise_for_status()
            size = len(response.json()["items"])
            if i >= WARMUP:
                durations.append(elapsed * 1000)
    shown = "&".join(f"{k}={v}" for k, v in params.items())
    print(f"  GET /v1/managers/{{id}}/book?{shown:<28} {size} items: {summary(durations)}")


async def run(url: str) -> None:
    settings = Settings(
        database_url=url, environment=Environment.development, log_json=False, log_level="WARNING"
    )
    engine = create_engine(settings, url)
    try:
        await load(engine)
        async with engine.connect() as conn:
            manager_id, size = (await conn.execute(text(BIGGEST_BOOK_SQL))).one()
        at = datetime.now(UTC)
        print(f"\nManager {manager_id}: responsible for {size} clients at {at.isoformat()}")
        await explain(engine, url, manager_id, at)
        print(f"\nLatency of the statement alone ({WARMUP} warm-up executions, then {CALLS}):")
        for mode in ("auto", "force_custom_plan", "force_generic_plan"):
            await time_query(engine, manager_id, mode)
        print(f"\nLatency through the ASGI app ({WARMUP} warm-up calls, then {CALLS}):")
        await time_endpoint(settings, engine, manager_id, {"limit": str(PAGE)})
        await time_endpoint(
            settings, engine, manager_id, {"limit": str(PAGE), "as_of": "2025-06-01"}
        )
    finally:
        await engine.dispose()


def main() -> None:
    configure_logging("WARNING", json_output=False)
    server_url = os.environ.get("DATABASE_URL", DEFAULT_URL)
    url = make_url(server_url).set(database=DATABASE).render_as_string(hide_password=False)
    asyncio.run(recreate_database(server_url))
    start = time.perf_counter()
    migrate(url)
    print(f"Database {DATABASE} migrated to head in {time.perf_counter() - start:.1f} s")
    asyncio.run(run(url))


if __name__ == "__main__":
    main()
