# ruff: noqa: E402
"""Latency, statement count and query plan of the team roll-up
(``GET /v1/managers/{id}/attainment?period=...&currency=...``).

Run by hand: ``.venv/bin/python bench/rollup.py`` (``--keep`` leaves the database in
place for a look afterwards). It (re)creates the database ``ams_bench_rollup`` on
``DATABASE_URL`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``), migrates it
to head, bulk-inserts with set-based SQL a 200-manager organisation, 20,000 clients,
1,000,000 sales, daily FX rates and a quota per manager per quarter, VACUUM ANALYZEs,
then prints

* for the head of sales (the whole organisation), a team lead and one account manager:
  the number of SQL statements one request sends (``before_cursor_execute`` listener),
  the roll-up's totals, and mean / p50 / p99 of 20 calls through the ASGI app (httpx)
  after 3 warm-ups; also the head's roll-up in USD (every EUR group then needs the
  inverse of a EUR/USD rate; GBP sales have no GBP/USD rate, and the lookup does not
  go through EUR, so this is expected to be a 422, reported and not timed);
* a check of the head's achieved total against a naive per-sale conversion in SQL;
* ``EXPLAIN (ANALYZE, BUFFERS)`` of the roll-up statement exactly as the endpoint sends it
  (``app.quotas.repository.team_achievements``, captured by the listener), re-run with the
  captured parameters on the engine's raw asyncpg connection: with the parameters bound
  (the custom plan), and as a prepared statement under
  ``plan_cache_mode = force_generic_plan`` (the plan asyncpg's cached prepared statement
  may switch to after five executions).

The organisation (time zone Europe/Budapest, fiscal year starting in April, so
``FY2026`` is 2025-04-01 to 2026-04-01 local): one head of sales (``sales_manager``), 9
team leads reporting to the head, 190 account managers reporting to the leads (21 or 22
each): three levels. The data, reproducible (``setseed``): every client has one account
manager (a multiplicative hash) and a currency (50 % EUR, 30 % USD, 20 % GBP); 1,000,000
sales, spread uniformly over the two fiscal years FY2025 and FY2026, go to clients
skewed towards the first ones (``random() ^ 1.5``) and are credited to the client's
account manager, in the client's currency, 3 % of them refunds (negative). EUR/USD and
EUR/GBP rates exist for every day of the range (and a week before it); every manager
has a ``sales_amount`` quota in EUR for each of the eight quarters (account managers
500k-800k, leads 12-16 M, the head 120 M).
"""

from __future__ import annotations

import os
import sys

# Python puts a script's folder first on the import path, and bench/ holds a script named
# like a standard package (http.py): take the folder off before anything imports
# ``http.client`` (httpx, urllib...).
_HERE = os.path.realpath(os.path.dirname(os.path.abspath(__file__)))
sys.path[:] = [p for p in sys.path if os.path.realpath(p or os.curdir) != _HERE]

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from alembic import command
from httpx import ASGITransport, AsyncClient
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.config import Environment, OrganisationSettings, Settings
from app.core.auth import Role, mint_token
from app.core.db import create_engine, create_sessionmaker
from app.core.health import alembic_config
from app.core.observability import configure_logging
from app.core.periods import FiscalCalendar
from app.main import create_app

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DATABASE = "ams_bench_rollup"
TIME_ZONE = "Europe/Budapest"
FISCAL_YEAR_START_MONTH = 4
FIRST_FISCAL_YEAR = 2025
FISCAL_YEARS = 2
LEADS = 9
ACCOUNT_MANAGERS = 190
CLIENTS = 20_000
SALES = 1_000_000
PERIOD = "FY2026-Q2"
CALLS = 20
WARMUP = 3
SLOW_MS = 1000.0

HEAD_SQL = """
INSERT INTO managers (id, email, full_name, role, region, time_zone, active, version,
                      created_at, updated_at, created_by, updated_by)
VALUES (gen_random_uuid(), 'bench-head@example.com', 'Bench Head of Sales', 'sales_manager',
        'EMEA', :tz, true, 1, now() - interval '5 years', now() - interval '5 years',
        'bench', 'bench')
"""

LEADS_SQL = """
INSERT INTO managers (id, email, full_name, role, reports_to_id, region, time_zone, active,
                      version, created_at, updated_at, created_by, updated_by)
SELECT gen_random_uuid(), 'bench-lead-' || g || '@example.com', 'Bench Team Lead ' || g,
       'team_lead', head.id, (ARRAY['EMEA', 'APAC', 'AMER'])[1 + g % 3], :tz, true, 1,
       now() - interval '5 years', now() - interval '5 years', 'bench', 'bench'
FROM generate_series(1, :leads) AS g,
     (SELECT id FROM managers WHERE role = 'sales_manager') AS head
"""

ACCOUNT_MANAGERS_SQL = """
INSERT INTO managers (id, email, full_name, role, reports_to_id, region, time_zone, active,
                      version, created_at, updated_at, created_by, updated_by)
SELECT gen_random_uuid(), 'bench-am-' || lpad(g::text, 3, '0') || '@example.com',
       'Bench Account Manager ' || g,
       (ARRAY['associate_account_manager', 'account_manager',
              'senior_account_manager'])[1 + g % 3],
       leads.ids[1 + g % array_length(leads.ids, 1)], 'EMEA', :tz, true, 1,
       now() - interval '4 years', now() - interval '4 years', 'bench', 'bench'
FROM generate_series(1, :account_managers) AS g,
     (SELECT array_agg(id ORDER BY email) AS ids FROM managers WHERE role = 'team_lead')
         AS leads
"""

CLIENTS_SQL = """
INSERT INTO clients (id, name, segment, lifecycle_stage, country, currency, version,
                     created_at, updated_at, created_by, updated_by)
SELECT gen_random_uuid(), 'Bench Client ' || g,
       (ARRAY['strategic', 'key', 'enterprise', 'mid_market', 'small'])[1 + g % 5],
       'active',
       (ARRAY['DE', 'FR', 'IT', 'NL', 'ES', 'US', 'US', 'US', 'GB', 'GB'])[1 + g % 10],
       (ARRAY['EUR', 'EUR', 'EUR', 'EUR', 'EUR', 'USD', 'USD', 'USD', 'GBP', 'GBP'])
           [1 + g % 10],
       1, now() - interval '3 years' + g * interval '1 second',
       now() - interval '3 years' + g * interval '1 second', 'bench', 'bench'
FROM generate_series(1, :clients) AS g
"""

# Every client's account manager (multiplicative hash over the 190).
CLIENT_PLAN_SQL = """
CREATE TEMP TABLE bench_clients AS
WITH m AS (
    SELECT array_agg(id ORDER BY email) AS ids FROM managers
    WHERE role NOT IN ('sales_manager', 'team_lead')
),
c AS (SELECT id, currency, row_number() OVER (ORDER BY created_at, id) AS n FROM clients)
SELECT c.n, c.id, c.currency, m.ids[1 + (c.n * 7919) % array_length(m.ids, 1)] AS manager_id
FROM c CROSS JOIN m
"""

SALES_SQL = """
INSERT INTO sales (id, client_id, amount, currency, closed_at, kind, product,
                   credited_manager_id, version, created_at, updated_at, created_by,
                   updated_by)
SELECT gen_random_uuid(), c.id,
       CASE WHEN s.r_kind < 0.03 THEN -round(s.amount / 4, 2) ELSE s.amount END,
       c.currency, s.closed_at,
       CASE WHEN s.r_kind < 0.03 THEN 'refund' WHEN s.r_kind < 0.33 THEN 'new'
            WHEN s.r_kind < 0.73 THEN 'renewal' WHEN s.r_kind < 0.90 THEN 'upsell'
            ELSE 'cross_sell' END,
       'Bench product ' || (1 + s.g % 12), c.manager_id, 1, s.closed_at, s.closed_at,
       'bench', 'bench'
FROM (
    SELECT g, 1 + floor(power(random(), 1.5) * :clients)::int AS n, random() AS r_kind,
           round((50 + random() * 1950)::numeric, 2) AS amount,
           date_trunc('second', CAST(:start AS timestamptz)
                      + random() * (CAST(:end AS timestamptz) - CAST(:start AS timestamptz)))
               AS closed_at
    FROM generate_series(1, :sales) AS g
) AS s
JOIN bench_clients AS c USING (n)
ORDER BY s.closed_at
"""

# 1 EUR = rate USD / GBP, a slow wave plus noise, every day from first_day to last_day.
FX_SQL = """
INSERT INTO fx_rates (id, base, quote, rate, valid_on, version, created_at, updated_at,
                      created_by, updated_by)
SELECT gen_random_uuid(), 'EUR', q.quote,
       round((q.mid + q.amp * sin(d.n / 29.0) + 0.004 * (random() - 0.5))::numeric, 6),
       d.day::date, 1, d.day, d.day, 'bench', 'bench'
FROM generate_series(CAST(:first_day AS date), CAST(:last_day AS date), interval '1 day')
         WITH ORDINALITY AS d(day, n)
CROSS JOIN (VALUES ('USD', 1.09, 0.04), ('GBP', 0.855, 0.015)) AS q(quote, mid, amp)
"""

# Eight fiscal quarters from local midnight of :local_start, labelled FYyyyy-Qn.
QUOTAS_SQL = """
INSERT INTO quotas (id, manager_id, metric, period_label, period_start, period_end,
                    target_amount, target_currency, version, created_at, updated_at,
                    created_by, updated_by)
SELECT gen_random_uuid(), m.id, 'sales_amount',
       'FY' || (:first_fy + q.n / 4) || '-Q' || (1 + q.n % 4),
       (CAST(:local_start AS timestamp) + q.n * interval '3 months') AT TIME ZONE :tz,
       (CAST(:local_start AS timestamp) + (q.n + 1) * interval '3 months') AT TIME ZONE :tz,
       CASE m.role WHEN 'sales_manager' THEN 120000000
                   WHEN 'team_lead' THEN round((12000000 + random() * 4000000)::numeric, -3)
                   ELSE round((500000 + random() * 300000)::numeric, -3) END,
       'EUR', 1, now(), now(), 'bench', 'bench'
FROM managers AS m CROSS JOIN generate_series(0, :quarters - 1) AS q(n)
"""

PICK_SQL = """
SELECT (SELECT id FROM managers WHERE role = 'sales_manager') AS head,
       (SELECT l.id FROM managers AS l JOIN managers AS r ON r.reports_to_id = l.id
        WHERE l.role = 'team_lead' GROUP BY l.id, l.email
        ORDER BY count(*) DESC, l.email LIMIT 1) AS lead,
       (SELECT credited_manager_id FROM sales
        WHERE closed_at >= :start AND closed_at < :end
        GROUP BY credited_manager_id ORDER BY count(*) DESC LIMIT 1) AS account_manager
"""

TEAM_SIZE_SQL = """
WITH RECURSIVE team(id) AS (
    SELECT CAST(:id AS uuid)
    UNION
    SELECT m.id FROM managers m JOIN team ON m.reports_to_id = team.id
)
SELECT count(*) AS members,
       (SELECT count(*) FROM sales s JOIN team t ON s.credited_manager_id = t.id
        WHERE s.closed_at >= :start AND s.closed_at < :end) AS sales
FROM team
"""

# The head's achieved total, converted sale by sale (the latest rate on or before the
# sale's local date, else the inverse of the opposite pair): the roll-up must agree.
NAIVE_SQL = """
SELECT sum(s.amount * CASE WHEN s.currency = 'EUR' THEN 1 ELSE (
           SELECT r.rate FROM (
               SELECT f.rate, f.valid_on FROM fx_rates f
               WHERE f.base = s.currency AND f.quote = 'EUR'
                 AND f.valid_on <= (s.closed_at AT TIME ZONE :tz)::date
               UNION ALL
               SELECT 1 / f.rate, f.valid_on FROM fx_rates f
               WHERE f.base = 'EUR' AND f.quote = s.currency
                 AND f.valid_on <= (s.closed_at AT TIME ZONE :tz)::date
           ) AS r ORDER BY r.valid_on DESC LIMIT 1) END)
FROM sales s
WHERE s.closed_at >= :start AND s.closed_at < :end
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


async def drop_database(server_url: str) -> None:
    conn = await asyncpg.connect(plain(server_url))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    finally:
        await conn.close()


def migrate(url: str) -> None:
    config = alembic_config()
    config.attributes["url"] = url
    command.upgrade(config, "head")


async def timed(conn: AsyncConnection, label: str, sql: str, **params: Any) -> None:
    start = time.perf_counter()
    result = await conn.execute(text(sql), params)
    print(f"  {label:<26} {result.rowcount:>9} rows  {time.perf_counter() - start:6.1f} s")


async def load(engine: AsyncEngine, calendar: FiscalCalendar) -> None:
    first = calendar.resolve(f"FY{FIRST_FISCAL_YEAR}")
    last = calendar.resolve(f"FY{FIRST_FISCAL_YEAR + FISCAL_YEARS - 1}")
    local_start = first.start.astimezone(ZoneInfo(TIME_ZONE)).replace(tzinfo=None)
    last_day = last.end.astimezone(ZoneInfo(TIME_ZONE)).date() - timedelta(days=1)
    print(
        f"Loading (set-based SQL), sales from {first.start.isoformat()} to {last.end.isoformat()}:"
    )
    async with engine.begin() as conn:
        await conn.execute(text("SET LOCAL statement_timeout = 0"))
        await conn.execute(text("SELECT setseed(0.42)"))
        await timed(conn, "managers: head", HEAD_SQL, tz=TIME_ZONE)
        await timed(conn, "managers: team leads", LEADS_SQL, tz=TIME_ZONE, leads=LEADS)
        await timed(
            conn,
            "managers: account managers",
            ACCOUNT_MANAGERS_SQL,
            tz=TIME_ZONE,
            account_managers=ACCOUNT_MANAGERS,
        )
        await timed(conn, "clients", CLIENTS_SQL, clients=CLIENTS)
        await timed(conn, "client plan (temp)", CLIENT_PLAN_SQL)
        await conn.execute(text("CREATE UNIQUE INDEX ON bench_clients (n)"))
        await conn.execute(text("ANALYZE bench_clients"))
        await timed(
            conn, "sales", SALES_SQL, clients=CLIENTS, sales=SALES, start=first.start, end=last.end
        )
        await timed(
            conn,
            "fx_rates",
            FX_SQL,
            first_day=local_start.date() - timedelta(days=7),
            last_day=last_day,
        )
        await timed(
            conn,
            "quotas",
            QUOTAS_SQL,
            first_fy=FIRST_FISCAL_YEAR,
            local_start=local_start,
            tz=TIME_ZONE,
            quarters=4 * FISCAL_YEARS,
        )
        # The labels and instants must be the ones the fiscal calendar resolves.
        quotas = await conn.execute(
            text("SELECT DISTINCT period_label, period_start, period_end FROM quotas")
        )
        for label, start, end in quotas:
            period = calendar.resolve(label)
            assert (period.start, period.end) == (start, end), (label, start, end)
        rows = await conn.execute(
            text(
                "SELECT currency, kind = 'refund', count(*) FROM sales GROUP BY 1, 2 ORDER BY 1, 2"
            )
        )
        print(
            "  sales by currency:",
            ", ".join(f"{c}{' refunds' if refund else ''} {n}" for c, refund, n in rows),
        )
    async with engine.connect() as conn:
        autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await autocommit.execute(text("SET statement_timeout = 0"))
        start = time.perf_counter()
        # VACUUM too: a live table is mostly all-visible with hint bits set.
        await autocommit.execute(text("VACUUM (ANALYZE)"))
        print(f"  {'VACUUM (ANALYZE)':<26} {'':>9}       {time.perf_counter() - start:6.1f} s")


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
    if isinstance(value, (int, float, Decimal)):
        return str(value)
    if isinstance(value, (datetime, date)):
        return f"'{value.isoformat()}'"
    return "'" + str(value).replace("'", "''") + "'"


async def explain(engine: AsyncEngine, statement: str, params: tuple[Any, ...]) -> None:
    """EXPLAIN (ANALYZE, BUFFERS) on the engine's raw asyncpg connection (the app's
    server settings): parameters bound, then as a generic plan. Second runs (warm)."""
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        driver: asyncpg.Connection = raw.driver_connection  # type: ignore[assignment]
        await driver.execute("SET statement_timeout = 0")
        for _ in range(2):
            rows = await driver.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {statement}", *params)
        print("\nEXPLAIN (ANALYZE, BUFFERS) of the roll-up, parameters bound (custom plan):")
        print("\n".join(str(r[0]) for r in rows))
        await driver.execute("SET plan_cache_mode = force_generic_plan")
        await driver.execute(f"PREPARE bench_rollup AS {statement}")
        args = ", ".join(sql_literal(p) for p in params)
        for _ in range(2):
            rows = await driver.fetch(f"EXPLAIN (ANALYZE, BUFFERS) EXECUTE bench_rollup({args})")
        print("\nEXPLAIN (ANALYZE, BUFFERS) of the roll-up, generic plan (force_generic_plan):")
        print("\n".join(str(r[0]) for r in rows))
        await driver.execute("DEALLOCATE bench_rollup")
        await driver.execute("RESET plan_cache_mode")
        await driver.execute("RESET statement_timeout")


def summary(durations: list[float]) -> str:
    cuts = statistics.quantiles(durations, n=100, method="inclusive")
    return (
        f"mean {statistics.fmean(durations):7.1f} ms, p50 {statistics.median(durations):7.1f} ms,"
        f" p99 {cuts[98]:7.1f} ms, max {max(durations):7.1f} ms"
    )


async def time_endpoint(http: AsyncClient, url: str, params: dict[str, str]) -> list[float]:
    durations: list[float] = []
    for i in range(WARMUP + CALLS):
        start = time.perf_counter()
        response = await http.get(url, params=params)
        elapsed = time.perf_counter() - start
        response.raise_for_status()
        if i >= WARMUP:
            durations.append(elapsed * 1000)
    return durations


def describe(body: dict[str, Any]) -> str:
    totals = "; ".join(
        f"{t['metric']} achieved {t['achieved']} / target {t['target']} {t['unit']}"
        f" (ratio {t['ratio']}, {t['quotas']} quotas)"
        for t in body["totals"]
    )
    return f"{len(body['members'])} members, {totals}"


async def run(url: str) -> None:
    settings = Settings(
        database_url=url,
        environment=Environment.development,
        log_json=False,
        log_level="WARNING",
        org=OrganisationSettings(
            time_zone=TIME_ZONE, fiscal_year_start_month=FISCAL_YEAR_START_MONTH, currency="EUR"
        ),
    )
    calendar = FiscalCalendar(TIME_ZONE, FISCAL_YEAR_START_MONTH)
    period = calendar.resolve(PERIOD)
    engine = create_engine(settings, url)
    app = create_app(settings)
    app.state.engine = engine
    app.state.sessionmaker = create_sessionmaker(engine)
    token = mint_token(settings, "bench", [Role.admin])
    try:
        await load(engine, calendar)
        window = {"start": period.start, "end": period.end}
        async with engine.connect() as conn:
            head, lead, account_manager = (await conn.execute(text(PICK_SQL), window)).one()
            subjects: list[tuple[str, uuid.UUID]] = [
                ("head of sales", head),
                ("team lead", lead),
                ("account manager", account_manager),
            ]
            print(f"\nPeriod {PERIOD}: {period.start.isoformat()} to {period.end.isoformat()}")
            for label, manager_id in subjects:
                members, sales = (
                    await conn.execute(text(TEAM_SIZE_SQL), {"id": manager_id, **window})
                ).one()
                print(f"  {label:<16} {manager_id}: team of {members}, {sales} sales in the period")
            naive = (await conn.execute(text(NAIVE_SQL), {"tz": TIME_ZONE, **window})).scalar_one()

        async with AsyncClient(
            transport=ASGITransport(app=app),
            base_url="http://bench",
            headers={"Authorization": f"Bearer {token}"},
            timeout=120,
        ) as http:
            cases = [(label, manager_id, "EUR") for label, manager_id in subjects]
            cases.append(("head of sales", head, "USD"))
            results: list[tuple[str, list[float]]] = []
            rollup: tuple[str, tuple[Any, ...]] | None = None
            for label, manager_id, currency in cases:
                url_path = f"/v1/managers/{manager_id}/attainment"
                params = {"period": PERIOD, "currency": currency}
                with capture(engine) as captured:
                    response = await http.get(url_path, params=params)
                name = f"{label}, {currency}"
                print(f"\nGET {url_path}?period={PERIOD}&currency={currency} ({name}):")
                if response.is_error:
                    problem = response.json()
                    print(
                        f"  {response.status_code} after {len(captured)} SQL statement(s):"
                        f" {problem.get('detail')} (not timed)"
                    )
                    continue
                body = response.json()
                print(f"  {len(captured)} SQL statement(s) per request: {describe(body)}")
                for statement, _ in captured:
                    print("    - " + " ".join(statement.split())[:110])
                if label == "head of sales" and currency == "EUR":
                    rollup = next(c for c in captured if "RECURSIVE" in c[0])
                    achieved = Decimal(body["totals"][0]["achieved"])
                    expected = Decimal(naive).quantize(Decimal("0.01"))
                    verdict = "agrees" if achieved == expected else "DIFFERS"
                    print(f"  naive per-sale conversion in SQL: {expected} EUR ({verdict})")
                results.append((name, await time_endpoint(http, url_path, params)))

        print(f"\nLatency through the ASGI app ({WARMUP} warm-up calls, then {CALLS}):")
        for name, durations in results:
            flag = "  <-- slow" if statistics.median(durations) > SLOW_MS else ""
            print(f"  {name:<22} {summary(durations)}{flag}")

        assert rollup is not None
        statement, bound = rollup
        print(f"\nThe roll-up statement (head of sales):\n{statement}\nparameters: {list(bound)}")
        await explain(engine, statement, bound)
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--keep", action="store_true", help=f"do not drop {DATABASE} at the end")
    args = parser.parse_args()
    configure_logging("WARNING", json_output=False)
    server_url = os.environ.get("DATABASE_URL", DEFAULT_URL)
    url = make_url(server_url).set(database=DATABASE).render_as_string(hide_password=False)
    asyncio.run(recreate_database(server_url))
    try:
        start = time.perf_counter()
        migrate(url)
        print(f"Database {DATABASE} migrated to head in {time.perf_counter() - start:.1f} s")
        asyncio.run(run(url))
    finally:
        if args.keep:
            print(f"\nDatabase {DATABASE} kept (--keep).")
        else:
            asyncio.run(drop_database(server_url))
            print(f"\nDatabase {DATABASE} dropped.")


if __name__ == "__main__":
    main()
