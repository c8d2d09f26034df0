"""Query plans and latency of ``GET /v1/complaints?breached=true`` and of a client timeline.

Run by hand: ``.venv/bin/python bench/complaints_breached.py``. It (re)creates the
database ``ams_bench_complaints`` on ``DATABASE_URL`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``), migrates it to head, bulk-inserts with
set-based SQL 50 managers, 1,000 clients, 100,000 complaints and their status history,
plus the interactions and assignments of one client whose timeline has exactly 1,000
events, VACUUM ANALYZEs, then prints

* ``EXPLAIN (ANALYZE, BUFFERS)`` of the exact statement ``GET /v1/complaints?breached=true
  &limit=50`` sends (captured with a ``before_cursor_execute`` listener while the endpoint
  runs through the ASGI app), with its parameters bound (the custom plan) and as a
  prepared statement under ``plan_cache_mode = force_generic_plan`` (the plan asyncpg's
  cached prepared statement may switch to after five executions);
* mean / p50 / p99 of 100 calls of that endpoint through httpx's ASGI transport;
* the same once breaches are rare (every policy set to 8,000 h: the page must then scan
  far along ``(created_at, id)`` to find 51 breached rows);
* the same for one page (50 events, oldest and newest first) of
  ``GET /v1/clients/{id}/timeline`` for the client with 1,000 events, and the number of
  statements one timeline page sends.

The data, reproducible (``setseed``): ``received_at`` spread over the last year;
severities 5 % critical, 20 % high, 45 % medium, 30 % low; complaints older than two
weeks are mostly closed (87 %), recent ones spread over every status. First responses
take ``30 h × r²`` (so the quick majority is in time, a tail is late), work starts up to
12 h later, waits last up to 72 h, resolutions take up to ~10 days; ``active_time``,
``clock_since``, ``clock_running``, ``first_responded_at``, ``resolved_at`` and ``version``
are what the service's transitions would have left, and every complaint has its history
rows (``NULL → open`` first). Two segment policies exist beside the seeded defaults.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import asyncpg
from alembic import command
from httpx import ASGITransport, AsyncClient
from sqlalchemy import event, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.complaints.repository import _with_sla, breached, visible
from app.config import Environment, Settings
from app.core.auth import Principal, Role, mint_token
from app.core.db import create_engine, create_sessionmaker
from app.core.health import alembic_config
from app.core.observability import configure_logging
from app.main import create_app

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DATABASE = "ams_bench_complaints"
MANAGERS = 50
CLIENTS = 1_000
COMPLAINTS = 100_000
TIMELINE_COMPLAINTS = 100  # of the 100,000, for the timeline client; 4 events each
TIMELINE_INTERACTIONS = 597  # + 400 complaint events + 3 assignment events = 1,000
CALLS = 100
WARMUP = 10
PAGE = 50

MANAGERS_SQL = """
INSERT INTO managers (id, email, full_name, role, region, time_zone, active, version,
                      created_at, updated_at, created_by, updated_by)
SELECT gen_random_uuid(), 'bench-' || g || '@example.com', 'Bench Manager ' || g,
       'account_manager', 'EMEA', 'Europe/Budapest', true, 1,
       now() - interval '3 years', now() - interval '3 years', 'bench', 'bench'
FROM generate_series(1, :managers) AS g
"""

CLIENTS_SQL = """
INSERT INTO clients (id, name, segment, lifecycle_stage, country, currency, version,
                     created_at, updated_at, created_by, updated_by)
SELECT gen_random_uuid(), 'Bench Client ' || g,
       (ARRAY['strategic', 'key', 'enterprise', 'mid_market', 'small'])[1 + g % 5],
       'active', 'HU', 'HUF', 1,
       now() - interval '2 years' + g * interval '1 second',
       now() - interval '2 years' + g * interval '1 second', 'bench', 'bench'
FROM generate_series(1, :clients) AS g
"""

POLICIES_SQL = """
INSERT INTO sla_policies (id, severity, segment, first_response_hours, resolution_hours,
                          version, created_by, updated_by)
VALUES (gen_random_uuid(), 'critical', 'strategic', 1, 8, 1, 'bench', 'bench'),
       (gen_random_uuid(), 'high', 'key', 2, 48, 1, 'bench', 'bench')
"""

# One row per complaint: everything drawn once. Client 1 (oldest) is the timeline client:
# it gets the first TIMELINE_COMPLAINTS complaints, all resolved on a fixed rhythm; the
# rest go to clients 2..1000.
PLAN_SQL = """
CREATE TEMP TABLE bench_plan AS
WITH c AS (SELECT array_agg(id ORDER BY created_at, id) AS ids FROM clients),
m AS (SELECT array_agg(id ORDER BY email) AS ids FROM managers),
r AS (
    SELECT g, random() AS r_sev, random() AS r_status, random() AS r_fr, random() AS r_ip,
           random() AS r_wait, random() AS r_res, random() AS r_close, random() AS r_cat,
           CASE WHEN g <= :timeline
                THEN date_trunc('hour', now()) - interval '300 days' + g * interval '2 days'
                ELSE now() - random() * interval '365 days' END AS received_at
    FROM generate_series(1, :complaints) AS g
),
s AS (
    SELECT r.*,
           CASE WHEN g <= :timeline THEN 'resolved'
                WHEN received_at > now() - interval '14 days' THEN
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
           CASE WHEN g <= :timeline THEN received_at + interval '1 hour'
                ELSE least(received_at + r_fr * r_fr * interval '30 hours', now()) END AS t_ack
    FROM r
),
t AS (
    SELECT s.*,
           CASE WHEN g <= :timeline THEN t_ack + interval '1 hour'
                ELSE least(t_ack + r_ip * interval '12 hours', now()) END AS t_ip
    FROM s
),
u AS (
    SELECT t.*,
           least(t_ip + r_wait * interval '72 hours', now()) AS t_wait,
           CASE WHEN g <= :timeline THEN t_ip + interval '18 hours'
                ELSE least(t_ip + (0.05 + 10 * r_res * r_res) * interval '24 hours', now())
           END AS t_res
    FROM t
)
SELECT gen_random_uuid() AS id, u.g, u.status, u.received_at, u.t_ack, u.t_ip, u.t_wait,
       u.t_res, least(u.t_res + u.r_close * interval '7 days', now()) AS t_close,
       CASE WHEN g <= :timeline THEN c.ids[1]
            ELSE c.ids[2 + (g * 7919) % (array_length(c.ids, 1) - 1)] END AS client_id,
       m.ids[1 + (g * 31) % array_length(m.ids, 1)] AS assignee_id,
       CASE WHEN r_sev < 0.05 THEN 'critical' WHEN r_sev < 0.25 THEN 'high'
            WHEN r_sev < 0.70 THEN 'medium' ELSE 'low' END AS severity,
       (ARRAY['product', 'service', 'billing', 'delivery', 'communication', 'other'])
           [1 + floor(r_cat * 6)::int] AS category
FROM u CROSS JOIN c CROSS JOIN m
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

# The timeline client: interactions every 12 h, and two primary stints (a handover).
INTERACTIONS_SQL = """
INSERT INTO interactions (id, client_id, manager_id, channel, direction, occurred_at,
                          duration_minutes, subject, notes, sentiment, decisions, version,
                          created_at, updated_at, created_by, updated_by)
SELECT gen_random_uuid(), c.id, m.id,
       (ARRAY['email', 'phone', 'video_call', 'meeting'])[1 + g % 4],
       (ARRAY['inbound', 'outbound'])[1 + g % 2],
       date_trunc('hour', now()) - interval '360 days' + g * interval '12 hours', 30,
       'Bench interaction ' || g, 'Notes', 'neutral', '{}', 1,
       now(), now(), 'bench', 'bench'
FROM generate_series(1, :interactions) AS g,
     (SELECT id FROM clients ORDER BY created_at, id LIMIT 1) AS c,
     (SELECT id FROM managers ORDER BY email LIMIT 1) AS m
"""

ASSIGNMENTS_SQL = """
INSERT INTO assignments (id, client_id, manager_id, role, starts_at, ends_at, reason,
                         version, created_at, updated_at, created_by, updated_by)
SELECT gen_random_uuid(), c.id, m.id, 'primary', s, e, 'bench', 1, s, s, 'bench', 'bench'
FROM (SELECT id FROM clients ORDER BY created_at, id LIMIT 1) AS c,
     (VALUES (1, date_trunc('hour', now()) - interval '400 days',
                 date_trunc('hour', now()) - interval '200 days'),
             (2, date_trunc('hour', now()) - interval '200 days', NULL)) AS v(n, s, e),
     (SELECT id, row_number() OVER (ORDER BY email) AS n FROM managers) AS m
WHERE m.n = v.n
"""

# Targets long enough that only the oldest unresolved complaints are breached.
RARE_HOURS = 8000
RARE_SQL = f"""
UPDATE sla_policies SET first_response_hours = {RARE_HOURS}, resolution_hours = {RARE_HOURS},
                        version = version + 1
"""

TIMELINE_CLIENT_SQL = "SELECT id FROM clients ORDER BY created_at, id LIMIT 1"


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


async def timed(conn: AsyncConnection, label: str, sql: str, **params: Any) -> None:
    start = time.perf_counter()
    result = await conn.execute(text(sql), params)
    print(f"  {label:<26} {result.rowcount:>8} rows  {time.perf_counter() - start:6.1f} s")


async def load(engine: AsyncEngine) -> None:
    print("Loading (set-based SQL):")
    async with engine.begin() as conn:
        await conn.execute(text("SET LOCAL statement_timeout = 0"))
        await conn.execute(text("SELECT setseed(0.42)"))
        await timed(conn, "managers", MANAGERS_SQL, managers=MANAGERS)
        await timed(conn, "clients", CLIENTS_SQL, clients=CLIENTS)
        await timed(conn, "segment SLA policies", POLICIES_SQL)
        await timed(
            conn, "plan (temp)", PLAN_SQL, complaints=COMPLAINTS, timeline=TIMELINE_COMPLAINTS
        )
        await timed(conn, "complaints", COMPLAINTS_SQL)
        await timed(conn, "complaint_transitions", TRANSITIONS_SQL)
        await timed(conn, "interactions", INTERACTIONS_SQL, interactions=TIMELINE_INTERACTIONS)
        await timed(conn, "assignments", ASSIGNMENTS_SQL)
        rows = await conn.execute(
            text("SELECT status, count(*) FROM complaints GROUP BY status ORDER BY 2 DESC")
        )
        print("  by status:", ", ".join(f"{status} {n}" for status, n in rows))
        rows = await conn.execute(
            text("SELECT severity, count(*) FROM complaints GROUP BY severity ORDER BY 2 DESC")
        )
        print("  by severity:", ", ".join(f"{severity} {n}" for severity, n in rows))
    async with engine.connect() as conn:
        autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await autocommit.execute(text("SET statement_timeout = 0"))
        start = time.perf_counter()
        await autocommit.execute(text("VACUUM (ANALYZE)"))
        print(f"  {'VACUUM (ANALYZE)':<26} {'':>8}       {time.perf_counter() - start:6.1f} s")


Captured = list[tuple[str, tuple[Any, ...]]]


@contextmanager
def capture(engine: AsyncEngine) -> Iterator[Captured]:
    """Every statement (as sent to asyncpg, ``$n`` placeholders) and its parameters."""
    seen: Captured = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        seen.append((statement, tuple(parameters or ())))

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


def sql_literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, datetime):
        return f"'{value.isoformat()}'"
    return "'" + str(value).replace("'", "''") + "'"


async def explain(url: str, label: str, statement: str, params: tuple[Any, ...]) -> None:
    """EXPLAIN (ANALYZE, BUFFERS) with the parameters bound, then as a generic plan."""
    conn = await asyncpg.connect(plain(url))
    try:
        for _ in range(2):  # the second run shows a warm cache
            rows = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {statement}", *params)
        print(f"\nEXPLAIN (ANALYZE, BUFFERS), {label}, parameters bound (custom plan):")
        print("\n".join(str(r[0]) for r in rows))
        await conn.execute("SET plan_cache_mode = force_generic_plan")
        await conn.execute(f"PREPARE bench_stmt AS {statement}")
        args = ", ".join(sql_literal(p) for p in params)
        execute = f"EXECUTE bench_stmt({args})" if params else "EXECUTE bench_stmt"
        for _ in range(2):
            rows = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {execute}")
        print(f"\nEXPLAIN (ANALYZE, BUFFERS), {label}, generic plan (force_generic_plan):")
        print("\n".join(str(r[0]) for r in rows))
    finally:
        await conn.close()


def summary(durations: list[float]) -> str:
    cuts = statistics.quantiles(durations, n=100, method="inclusive")
    return (
        f"mean {statistics.fmean(durations):6.2f} ms, p50 {statistics.median(durations):6.2f} ms,"
        f" p99 {cuts[98]:6.2f} ms, max {max(durations):6.2f} ms"
    )


async def time_endpoint(http: AsyncClient, url: str, params: dict[str, str]) -> str:
    durations: list[float] = []
    size = 0
    for i in range(WARMUP + CALLS):
        start = time.perf_counter()
        response = await http.get(url, params=params)
        elapsed = time.perf_counter() - start
        response.raise_for_status()
        size = len(response.json()["items"])
        if i >= WARMUP:
            durations.append(elapsed * 1000)
    return f"{size} items: {summary(durations)}"


def page_statement(captured: Captured, marker: str) -> tuple[str, tuple[Any, ...]]:
    """The captured statement containing ``marker`` (exactly one)."""
    found = [c for c in captured if marker in c[0]]
    assert len(found) == 1, [c[0][:80] for c in captured]
    return found[0]


async def run(url: str) -> None:
    settings = Settings(
        database_url=url, environment=Environment.development, log_json=False, log_level="WARNING"
    )
    engine = create_engine(settings, url)
    app = create_app(settings)
    app.state.engine = engine
    app.state.sessionmaker = create_sessionmaker(engine)
    token = mint_token(settings, "bench", [Role.admin])
    try:
        await load(engine)
        principal = Principal(subject="bench", roles=frozenset({Role.admin}), manager_id=None)
        async with engine.connect() as conn:
            total = (
                await conn.execute(
                    select(func.count()).select_from(
                        _with_sla(visible(principal)).where(breached).subquery()
                    )
                )
            ).scalar_one()
            timeline_client = (await conn.execute(text(TIMELINE_CLIENT_SQL))).scalar_one()
        print(f"\nBreached now: {total} of {COMPLAINTS} complaints")

        async with AsyncClient(
            transport=ASGITransport(app=app),
            base_url="http://bench",
            headers={"Authorization": f"Bearer {token}"},
        ) as http:
            # --- GET /v1/complaints?breached=true&limit=50 ---
            params = {"breached": "true", "limit": str(PAGE)}
            with capture(engine) as captured:
                response = await http.get("/v1/complaints", params=params)
            response.raise_for_status()
            statement, bound = page_statement(captured, "FROM complaints")
            print(
                f"\nGET /v1/complaints?breached=true&limit={PAGE}: {len(captured)} statement(s),"
                f" {len(response.json()['items'])} items. The statement:\n{statement}"
                f"\nparameters: {list(bound)}"
            )
            await explain(url, "breached=true page", statement, bound)
            print(f"\nLatency through the ASGI app ({WARMUP} warm-up calls, then {CALLS}):")
            print(
                "  GET /v1/complaints?breached=true&limit=50   "
                + await time_endpoint(http, "/v1/complaints", params)
            )

            # --- the same page when breaches are rare (generous targets) ---
            async with engine.begin() as conn:
                await conn.execute(text(RARE_SQL))
                rare = (
                    await conn.execute(
                        select(func.count()).select_from(
                            _with_sla(visible(principal)).where(breached).subquery()
                        )
                    )
                ).scalar_one()
            print(
                f"\nRare breaches: every policy set to {RARE_HOURS} h / {RARE_HOURS} h;"
                f" breached now: {rare} of {COMPLAINTS}"
            )
            with capture(engine) as captured:
                response = await http.get("/v1/complaints", params=params)
            statement, bound = page_statement(captured, "FROM complaints")
            await explain(url, "breached=true page, rare breaches", statement, bound)
            print(
                "\n  GET /v1/complaints?breached=true&limit=50 (rare)   "
                + await time_endpoint(http, "/v1/complaints", params)
            )

            # --- GET /v1/clients/{id}/timeline ---
            timeline = f"/v1/clients/{timeline_client}/timeline"
            events = 0
            cursor: str | None = None
            while True:
                query = {"limit": "500", **({"cursor": cursor} if cursor else {})}
                body = (await http.get(timeline, params=query)).json()
                events += len(body["items"])
                cursor = body["next_cursor"]
                if cursor is None:
                    break
            print(f"\nTimeline client {timeline_client}: {events} events")
            with capture(engine) as captured:
                response = await http.get(timeline, params={"limit": str(PAGE)})
            response.raise_for_status()
            statement, bound = page_statement(captured, "UNION ALL")
            print(
                f"GET /v1/clients/{{id}}/timeline?limit={PAGE}: {len(captured)} statement(s)"
                f" per page. The page statement:\n{statement}\nparameters: {list(bound)}"
            )
            await explain(url, "timeline page (oldest first)", statement, bound)
            middle = (await http.get(timeline, params={"limit": "500"})).json()["next_cursor"]
            assert middle is not None
            with capture(engine) as captured:
                await http.get(timeline, params={"limit": str(PAGE), "cursor": middle})
            print(f"\nWith a cursor (after event 500): {len(captured)} statement(s) per page")
            print(f"\nLatency through the ASGI app ({WARMUP} warm-up calls, then {CALLS}):")
            for label, extra in (
                ("oldest first", {}),
                ("newest first", {"order": "desc"}),
                ("after event 500", {"cursor": middle}),
            ):
                result = await time_endpoint(http, timeline, {"limit": str(PAGE), **extra})
                print(f"  timeline page, {label:<16} {result}")
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
