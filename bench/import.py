"""Time the bulk importer (``ams import sales FILE``) on files of growing size.

Run by hand: ``.venv/bin/python bench/import.py [--rows 1000000]
[--sizes 250000,500000,1000000]`` (``--rows`` is the largest size, added to ``--sizes``
when missing; ``--no-explain`` skips the plans; ``--cprofile`` adds a cProfile run of
the largest size; ``--keep`` keeps the database).

On ``DATABASE_URL`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``) it
(re)creates the database ``ams_bench_import`` and migrates it to head, then seeds
1,000 clients (``c-<n>``) and 200 managers (``m-<n>``) with set-based SQL. It writes a
synthetic sales CSV file of the largest size to a temporary folder (the smaller files
are its first rows):

* ``external_ref`` ``s-<n>``, a random client and credited manager;
* currencies EUR 50 %, USD 30 %, HUF 20 % (HUF amounts about 400 times larger; every
  amount has 2 decimals, HUF's ISO 4217 minor unit too);
* kind 80 % ``new``, 15 % renewal / upsell / cross-sell, 5 % ``refund`` (negative);
* ``closed_at`` in the last two years, half bare dates, half RFC 3339 instants (``Z``
  or ``+02:00``);
* 0.1 % bad rows: every 2000th row names an unknown client (rejected by the SQL
  checks), every other 1000th has a bad amount (``not-a-number`` or ``12.345``, too many
  decimals: rejected while parsing).

For each size it empties the database (recreate, migrate, seed, CHECKPOINT) and runs the
import in a separate process, under ``/usr/bin/time -v`` when present, exactly as ``ams
import sales FILE`` does (the child calls ``app.cli.main``). The child times the phases
without changing the importer: the staging (``engine._stage``) and within it the COPY
that the parser feeds as it reads (``asyncpg`` ``copy_to_table``), every SQL statement
and its peak RSS so far, as wall seconds, its own CPU seconds and the CPU seconds of its
PostgreSQL backend (``/proc/<pid>/stat``, a local server): CPU seconds stay honest when
other processes load the machine, wall seconds do not. On the largest file it then
imports the same file again (nothing changes: ``unchanged`` = rows − rejected). It
prints the phases of every run and a table (rows, seconds, rows/s, peak RSS, created,
rejected), then, unless ``--no-explain``, replays the staging and the statements of a
re-import and of a first import (on a fresh database) under ``EXPLAIN (ANALYZE,
BUFFERS)`` in transactions that are rolled back. The database is dropped at the end.

Target (DESIGN §6): at least 50,000 rows/s for 1,000,000 rows, peak memory flat.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from itertools import islice
from pathlib import Path
from random import Random
from typing import Any

import asyncpg
from alembic import command
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from app.config import Environment, Settings
from app.core.db import create_engine, create_sessionmaker
from app.core.health import alembic_config

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DATABASE = "ams_bench_import"
DEFAULT_SIZES = (250_000, 500_000, 1_000_000)
CLIENTS = 1_000
MANAGERS = 200
TARGET_ROWS_PER_S = 50_000
SEED = 20_261_129
HEADER = (
    "external_ref",
    "client_ref",
    "amount",
    "currency",
    "closed_at",
    "kind",
    "product",
    "credited_manager_ref",
)
PRODUCTS = ("Platform licence", "Support plan", "Onboarding", "Analytics add-on", "Training")
TIME = Path("/usr/bin/time")

# ------------------------------------------------------------------------------ seeding

SEED_CLIENTS = f"""
INSERT INTO clients (id, external_ref, name, segment, lifecycle_stage, country, currency,
                     version, created_by, updated_by)
SELECT gen_random_uuid(), 'c-' || g, 'Import Bench Client ' || g,
       (ARRAY['strategic', 'key', 'enterprise', 'mid_market', 'small'])[1 + g % 5],
       'active', (ARRAY['DE', 'US', 'HU'])[1 + g % 3], (ARRAY['EUR', 'USD', 'HUF'])[1 + g % 3],
       1, 'bench', 'bench'
FROM generate_series(1, {CLIENTS}) AS g
"""
SEED_MANAGERS = f"""
INSERT INTO managers (id, external_ref, email, full_name, role, time_zone, active, version,
                      created_by, updated_by)
SELECT gen_random_uuid(), 'm-' || g, 'import-bench-' || g || '@example.com',
       'Import Bench Manager ' || g, 'account_manager', 'UTC', true, 1, 'bench', 'bench'
FROM generate_series(1, {MANAGERS}) AS g
"""


def plain(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def with_database(url: str, database: str) -> str:
    return make_url(url).set(database=database).render_as_string(hide_password=False)


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
    command.upgrade(config, "head")  # sync; runs asyncio.run inside


async def seed(url: str) -> None:
    conn = await asyncpg.connect(plain(url))
    try:
        async with conn.transaction():
            await conn.execute(SEED_CLIENTS)
            await conn.execute(SEED_MANAGERS)
        await conn.execute("VACUUM ANALYZE clients")
        await conn.execute("VACUUM ANALYZE managers")
        try:
            await conn.execute("CHECKPOINT")
        except asyncpg.InsufficientPrivilegeError:
            pass
    finally:
        await conn.close()


def fresh_database(server_url: str, url: str) -> None:
    asyncio.run(recreate_database(server_url))
    migrate(url)
    asyncio.run(seed(url))


async def other_sessions(server_url: str) -> list[str]:
    """Active statements of other sessions on the server (they skew the figures)."""
    conn = await asyncpg.connect(plain(server_url))
    try:
        rows = await conn.fetch(
            "SELECT datname, left(regexp_replace(query, '\\s+', ' ', 'g'), 60) AS q"
            " FROM pg_stat_activity WHERE state = 'active' AND pid <> pg_backend_pid()"
            " AND backend_type = 'client backend'"
        )
        return [f"{r['datname']}: {r['q']}" for r in rows]
    finally:
        await conn.close()


# ---------------------------------------------------------------------------- the file


def is_unknown_client(n: int) -> bool:
    return n % 2000 == 0


def is_bad_amount(n: int) -> bool:
    return n % 2000 == 1000


def expected_rejected(rows: int) -> int:
    return sum(1 for n in range(1000, rows + 1, 1000) if is_unknown_client(n) or is_bad_amount(n))


def sale_rows(rows: int, now: datetime) -> Iterator[tuple[str, ...]]:
    rng = Random(SEED)
    plus_two = timezone(timedelta(hours=2))
    for n in range(1, rows + 1):
        client = f"c-{rng.randint(1, CLIENTS)}"
        manager = f"m-{rng.randint(1, MANAGERS)}"
        pick = rng.random()
        code = "EUR" if pick < 0.5 else "USD" if pick < 0.8 else "HUF"
        cents = rng.randint(5_000, 5_000_000)
        if code == "HUF":
            cents = cents * 400 + rng.randint(0, 99)
        pick = rng.random()
        kind = (
            "refund"
            if pick < 0.05
            else "new"
            if pick < 0.85
            else ("renewal", "upsell", "cross_sell")[n % 3]
        )
        amount = f"{'-' if kind == 'refund' else ''}{cents // 100}.{cents % 100:02d}"
        at = now - timedelta(seconds=rng.randint(3_600, 730 * 86_400))
        style = n % 4
        closed_at = (
            at.date().isoformat()
            if style < 2
            else at.strftime("%Y-%m-%dT%H:%M:%SZ")
            if style == 2
            else at.astimezone(plus_two).isoformat(timespec="seconds")
        )
        product = "" if n % 10 == 0 else PRODUCTS[n % len(PRODUCTS)]
        if is_unknown_client(n):
            client = "c-999999"
        if is_bad_amount(n):
            amount = "not-a-number" if n % 4000 == 1000 else "12.345"
        yield (f"s-{n}", client, amount, code, closed_at, kind, product, manager)


def write_files(folder: Path, sizes: list[int]) -> dict[int, Path]:
    """The largest file, and each smaller one as its first rows."""
    largest = max(sizes)
    files = {largest: folder / f"sales-{largest}.csv"}
    with files[largest].open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(HEADER)
        writer.writerows(sale_rows(largest, datetime.now(UTC)))
    for size in sizes:
        if size != largest:
            files[size] = folder / f"sales-{size}.csv"
            with (
                files[largest].open(encoding="utf-8") as source,
                files[size].open("w", encoding="utf-8") as target,
            ):
                target.writelines(islice(source, size + 1))
    return files


# ------------------------------------------------------------------ the child process


@dataclass
class ChildTimings:
    """Wall seconds, this process's CPU seconds (``cpu``) and the CPU seconds of the
    PostgreSQL backend serving the import (``server``, from ``/proc/<pid>/stat``: the
    server is local; ``-1`` when it cannot be read). CPU seconds do not grow when other
    processes compete for the machine; wall seconds do."""

    started: float = field(default_factory=time.perf_counter)
    import_s: float = 0.0
    import_start_s: float = 0.0
    import_server_cpu_s: float = -1.0
    import_cpu_s: float = 0.0
    stage_s: float = 0.0
    stage_cpu_s: float = 0.0
    stage_server_cpu_s: float = -1.0
    copy_s: float = 0.0
    copy_cpu_s: float = 0.0
    copy_server_cpu_s: float = 0.0
    copy_calls: int = 0
    statements: list[dict[str, Any]] = field(default_factory=list)
    maxrss_kb: dict[str, int] = field(default_factory=dict)
    total_s: float = 0.0


def maxrss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux


TICKS = os.sysconf("SC_CLK_TCK")


def server_cpu(pid: int | None) -> float:
    """User + system CPU seconds of a (local) server process; -1 when unknown."""
    if pid is None:
        return -1.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return -1.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def delta(after: float, before: float) -> float:
    return after - before if after >= 0 and before >= 0 else -1.0


def statement_names() -> dict[str, str]:
    from app.imports import sql

    names = {sql.DUPLICATES: "check DUPLICATES", sql.SALES_WRITE: "SALES_WRITE (+ audit)"}
    for i, check in enumerate(sql.SALES_CHECKS):
        names[check] = f"check SALES_CHECKS[{i}] " + short(check, 38)
    return names


def short(statement: str, width: int = 60) -> str:
    flat = re.sub(r"\s+", " ", statement).strip()
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def install_timers(timings: ChildTimings) -> None:
    """Time the importer's phases from outside: nothing in app/ changes."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    import app.imports.engine as engine_module

    names = statement_names()
    clock: dict[int, tuple[float, int | None, float]] = {}

    def backend_pid(conn: Any) -> int | None:
        driver = getattr(getattr(conn, "connection", None), "driver_connection", None)
        return driver.get_server_pid() if isinstance(driver, asyncpg.Connection) else None

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        pid = backend_pid(conn)
        clock[id(cursor)] = (time.perf_counter(), pid, server_cpu(pid))

    def after(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: Any) -> None:
        started, pid, cpu = clock.pop(id(cursor), (time.perf_counter(), None, -1.0))
        elapsed = time.perf_counter() - started
        source = getattr(getattr(getattr(context, "compiled", None), "statement", None), "text", "")
        timings.statements.append(
            {
                "name": names.get(source) or short(source or statement),
                "seconds": elapsed,
                "server_cpu_s": delta(server_cpu(pid), cpu),
                "rowcount": getattr(cursor, "rowcount", -1),
                "maxrss_kb": maxrss_kb(),
            }
        )

    event.listen(Engine, "before_cursor_execute", before)
    event.listen(Engine, "after_cursor_execute", after)

    copy = asyncpg.connection.Connection.copy_to_table

    async def timed_copy(self: asyncpg.Connection, table_name: str, **kwargs: Any) -> str:
        # The importer's COPY source parses the file as COPY pulls it: child CPU here is
        # the Python parsing, CSV writing and sending; server CPU is COPY's side.
        start, cpu, server = (
            time.perf_counter(),
            time.process_time(),
            server_cpu(self.get_server_pid()),
        )
        try:
            return await copy(self, table_name, **kwargs)
        finally:
            timings.copy_s += time.perf_counter() - start
            timings.copy_cpu_s += time.process_time() - cpu
            timings.copy_server_cpu_s += delta(server_cpu(self.get_server_pid()), server)
            timings.copy_calls += 1

    setattr(asyncpg.connection.Connection, "copy_to_table", timed_copy)  # noqa: B010

    stage = engine_module._stage

    async def timed_stage(conn: AsyncConnection, *args: Any, **kwargs: Any) -> int:
        driver = (await conn.get_raw_connection()).driver_connection
        pid = driver.get_server_pid() if isinstance(driver, asyncpg.Connection) else None
        start, cpu, server = time.perf_counter(), time.process_time(), server_cpu(pid)
        try:
            return await stage(conn, *args, **kwargs)
        finally:
            timings.stage_s = time.perf_counter() - start
            timings.stage_cpu_s = time.process_time() - cpu
            timings.stage_server_cpu_s = delta(server_cpu(pid), server)
            timings.maxrss_kb["after staging"] = maxrss_kb()

    setattr(engine_module, "_stage", timed_stage)  # noqa: B010

    run_import = engine_module.run_import

    async def timed_run_import(session: AsyncSession, *args: Any, **kwargs: Any) -> Any:
        driver = (await (await session.connection()).get_raw_connection()).driver_connection
        pid = driver.get_server_pid() if isinstance(driver, asyncpg.Connection) else None
        start, cpu, server = time.perf_counter(), time.process_time(), server_cpu(pid)
        timings.import_start_s = start - timings.started
        timings.maxrss_kb["before import"] = maxrss_kb()
        try:
            return await run_import(session, *args, **kwargs)
        finally:
            timings.import_s = time.perf_counter() - start
            timings.import_cpu_s = time.process_time() - cpu
            timings.import_server_cpu_s = delta(server_cpu(pid), server)
            timings.maxrss_kb["after import"] = maxrss_kb()

    setattr(engine_module, "run_import", timed_run_import)  # noqa: B010


def child(path: str, timings_path: str, cprofile_path: str | None) -> int:
    """``ams import sales PATH`` (``app.cli.main``) with the phase timers installed."""
    timings = ChildTimings()
    install_timers(timings)
    from app.cli import main

    sys.argv = ["ams", "import", "sales", path]
    code: int = 0
    profiler = None
    if cprofile_path:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    try:
        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        if profiler is not None and cprofile_path:
            profiler.disable()
            profiler.dump_stats(cprofile_path)
        timings.total_s = time.perf_counter() - timings.started
        timings.maxrss_kb["end"] = maxrss_kb()
        Path(timings_path).write_text(json.dumps(timings.__dict__))
    return code


# ------------------------------------------------------------------------- the runs


@dataclass
class Run:
    label: str
    rows: int
    wall_s: float
    peak_rss_mb: float
    report: dict[str, Any]
    timings: dict[str, Any]
    busy: list[str]
    load: float
    cpu_s: float | None

    @property
    def engine_s(self) -> float:
        return float(self.report["duration_ms"]) / 1000


def run_child(
    label: str, path: Path, rows: int, url: str, server_url: str, cprofile: Path | None = None
) -> Run:
    busy = asyncio.run(other_sessions(server_url))
    load = os.getloadavg()[0]
    cpu_s: float | None = None
    with tempfile.TemporaryDirectory(prefix="ams-bench-child-") as tmp:
        timings_path = Path(tmp) / "timings.json"
        time_path = Path(tmp) / "time.txt"
        cmd = [sys.executable, __file__, "--child", str(path), "--timings", str(timings_path)]
        if cprofile is not None:
            cmd += ["--cprofile-out", str(cprofile)]
        if TIME.exists():
            cmd = [str(TIME), "-v", "-o", str(time_path), *cmd]
        env = {**os.environ, "DATABASE_URL": url}
        print(f"  {label}: importing {rows:,} rows ...", flush=True)
        start = time.perf_counter()
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            print(done.stdout[-3000:], done.stderr[-3000:], sep="\n")
            raise SystemExit(f"the import of {path} failed ({done.returncode})")
        timings = json.loads(timings_path.read_text())
        peak_kb = timings["maxrss_kb"]["end"]
        if time_path.exists():
            measured = time_path.read_text()
            found = re.search(r"Maximum resident set size \(kbytes\): (\d+)", measured)
            if found:
                peak_kb = int(found.group(1))
            cpu = re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)", measured)
            cpu_s = sum(float(c) for c in cpu) if cpu else None
    report = json.loads(done.stdout)
    return Run(label, rows, wall, peak_kb / 1024, report, timings, busy, load, cpu_s)


def seconds(value: float) -> str:
    return f"{value:8.2f}" if value >= 0 else "       ?"


def phase(name: str, wall: float, cpu: float = -1.0, server: float = -1.0, tail: str = "") -> None:
    print(f"    {short(name, 56):<56} {seconds(wall)} {seconds(cpu)} {seconds(server)}{tail}")


def print_phases(run: Run) -> None:
    t = run.timings
    print(f"\n  {run.label}: {run.rows:,} rows, process {run.wall_s:.1f} s", end="")
    print(f", run_import {t['import_s']:.1f} s (engine duration_ms {run.engine_s:.1f} s)")
    print(f"    {'phase':<56}   wall s  child CPU  server CPU")
    startup = run.wall_s - t["total_s"] + t["import_start_s"]
    phase("startup (interpreter, imports, connect)", startup)
    phase("staging (_stage)", t["stage_s"], t["stage_cpu_s"], t["stage_server_cpu_s"])
    copy = "  COPY, fed by the parser as it reads (_records, CSV chunks)"
    phase(copy, t["copy_s"], t["copy_cpu_s"], t["copy_server_cpu_s"])
    phase("  header, DDL, ANALYZE import_rows", t["stage_s"] - t["copy_s"])
    in_stage = ("CREATE TEMP TABLE import_rows", "DROP TABLE IF EXISTS", "SET LOCAL")
    statements = [
        st
        for st in t["statements"]
        if not st["name"].startswith(in_stage)
        and (st["seconds"] >= 0.005 or st["name"].startswith(("check", "SALES")))
    ]
    after = False
    for st in statements:
        if st["name"].startswith("ANALYZE import_rows"):
            after = True
            continue
        if after:
            rows = f"{st['rowcount']:>10,} rows" if st["rowcount"] >= 0 else " " * 15
            peak = f"  peak {st['maxrss_kb'] / 1024:5.0f} MB"
            phase(st["name"], st["seconds"], -1.0, st["server_cpu_s"], rows + peak)
    after_stage = t["import_cpu_s"] - t["stage_cpu_s"]
    phase("client CPU after staging (result rows, id sets, report)", -1.0, after_stage)
    phase("commit, JSON report, exit", t["total_s"] - t["import_start_s"] - t["import_s"])
    cpu = run.cpu_s if run.cpu_s is not None else -1.0
    phase(
        "whole process (child CPU) / run_import (server CPU)",
        run.wall_s,
        cpu,
        t["import_server_cpu_s"],
    )
    rss = ", ".join(f"{k} {v / 1024:.0f} MB" for k, v in t["maxrss_kb"].items())
    print(f"    peak RSS so far: {rss}; /usr/bin/time: {run.peak_rss_mb:.0f} MB")
    print(f"    load average at start {run.load:.1f} on {os.cpu_count()} CPUs")
    if run.busy:
        print(f"    NOTE other active sessions at start: {'; '.join(run.busy)}")


def print_table(runs: list[Run], expected: dict[int, int]) -> None:
    print(
        "\nrun             rows  seconds   rows/s  engine s  CPU s child/server  peak RSS MB"
        "    created  updated  unchanged  rejected (expected)  load"
    )
    for r in runs:
        rep = r.report
        cpu = f"{r.cpu_s:.1f}" if r.cpu_s is not None else "?"
        server = r.timings["import_server_cpu_s"]
        cpus = f"{cpu} / {server:.1f}" if server >= 0 else f"{cpu} / ?"
        print(
            f"{r.label:<10} {r.rows:>9,} {r.wall_s:>8.1f} {r.rows / r.wall_s:>8,.0f}"
            f" {r.engine_s:>9.1f} {cpus:>19} {r.peak_rss_mb:>12,.0f}"
            f" {rep['created']:>10,} {rep['updated']:>8,} {rep['unchanged']:>10,}"
            f" {rep['rejected']:>9,} ({expected[r.rows]:,}){r.load:>10.1f}"
        )


# ---------------------------------------------------------------------------- explain


def bench_settings(url: str) -> Settings:
    return Settings(
        database_url=url, environment=Environment.development, log_json=False, log_level="WARNING"
    )


@asynccontextmanager
async def app_engine(url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(bench_settings(url), url)
    try:
        yield engine
    finally:
        await engine.dispose()


async def explain(conn: AsyncConnection, title: str, statement: str, binds: Any) -> float:
    plan = [
        row[0] for row in await conn.execute(text("EXPLAIN (ANALYZE, BUFFERS) " + statement), binds)
    ]
    ms = next((float(m.group(1)) for line in plan if (m := EXEC.search(line))), 0.0)
    print(f"\n  -- {title}: {ms / 1000:.2f} s")
    for line in plan:
        print(f"     {line}")
    return ms


EXEC = re.compile(r"Execution Time: ([\d.]+) ms")


async def explain_replay(url: str, path: Path, label: str) -> None:
    """Stage ``path`` as run_import does, then EXPLAIN ANALYZE the checks and the write
    in order (each changes the staging table like the real run); roll back. Mirrors
    run_import's sequence for ``sales`` (no pairs, no links, no split): keep it in step
    when the engine changes."""
    import app.imports.engine as engine_module
    from app.core.periods import FiscalCalendar
    from app.imports import sql
    from app.imports.formats import formats

    settings = bench_settings(url)
    columns = formats(settings.org.time_zone)["sales"]
    calendar = FiscalCalendar(settings.org.time_zone, settings.org.fiscal_year_start_month)
    binds: dict[str, Any] = {
        "actor": "bench",
        "roles": [],
        "request_id": None,
        "import_id": str(uuid.uuid4()),
    }
    print(f"\nEXPLAIN (ANALYZE, BUFFERS) of the {label} ({path.name}), rolled back:")
    async with app_engine(url) as engine:
        session = create_sessionmaker(engine)()
        try:
            conn = await session.connection()
            for setting in ("statement_timeout = 0", "TimeZone = 'UTC'", "work_mem = '64MB'"):
                await conn.execute(text(f"SET LOCAL {setting}"))  # as run_import
            with path.open("rb") as stream:  # noqa: ASYNC230 (as the importer reads it)
                start = time.perf_counter()
                rows = await engine_module._stage(conn, "sales", columns, stream, calendar)
                print(f"  staged {rows:,} rows in {time.perf_counter() - start:.1f} s")
            size = (
                await conn.execute(text("SELECT pg_total_relation_size('import_rows')"))
            ).scalar_one()
            print(f"  import_rows after COPY: {size / 2**20:.0f} MB")
            names = statement_names()
            total = 0.0
            for statement in (sql.DUPLICATES, *sql.SALES_CHECKS):
                total += await explain(conn, names[statement], statement, {})
            # then, as run_import does for sales (no pairs, no links), the write of the
            # whole file in one batch (its first try)
            last = (await conn.execute(text("SELECT max(row_no) FROM import_rows"))).scalar()
            binds.update(lo=2, hi=last or 1, id_salt=0)
            total += await explain(conn, names[sql.SALES_WRITE], sql.SALES_WRITE, binds)
            size = (
                await conn.execute(text("SELECT pg_total_relation_size('import_rows')"))
            ).scalar_one()
            print(f"\n  import_rows at the end: {size / 2**20:.0f} MB;", end="")
            print(f" statements {total / 1000:.1f} s")
        finally:
            await session.rollback()
            await session.close()


def print_cprofile(path: Path) -> None:
    import pstats

    print("\ncProfile of the child (largest size), top 30 by own time:")
    stats = pstats.Stats(str(path), stream=sys.stdout)
    stats.strip_dirs().sort_stats("tottime").print_stats(30)


# ------------------------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=None, help="largest size")
    parser.add_argument("--sizes", default=",".join(str(s) for s in DEFAULT_SIZES))
    parser.add_argument("--no-explain", action="store_true", help="skip the EXPLAIN replays")
    parser.add_argument("--cprofile", action="store_true", help="add a cProfile run")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--timings", help=argparse.SUPPRESS)
    parser.add_argument("--cprofile-out", help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    if args.child:
        return child(args.child, args.timings, args.cprofile_out)
    sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    if args.rows is not None:
        sizes = sorted({s for s in sizes if s <= args.rows} | {args.rows})
    largest = max(sizes)
    server_url = os.environ.get("DATABASE_URL") or DEFAULT_URL
    url = with_database(server_url, DATABASE)
    print(f"database {DATABASE} on {make_url(server_url).render_as_string()}")
    print(f"/usr/bin/time: {'yes' if TIME.exists() else 'no (the child reports ru_maxrss)'}")
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="ams-bench-import-") as tmp:
        start = time.perf_counter()
        files = write_files(Path(tmp), sizes)
        mb = files[largest].stat().st_size / 2**20
        print(f"wrote {largest:,} rows ({mb:.0f} MB) in {time.perf_counter() - start:.1f} s")
        expected = {size: expected_rejected(size) for size in sizes}
        try:
            for size in sizes:
                fresh_database(server_url, url)
                runs.append(run_child(f"{size // 1000}k", files[size], size, url, server_url))
                print_phases(runs[-1])
            runs.append(run_child("re-import", files[largest], largest, url, server_url))
            print_phases(runs[-1])
            if not args.no_explain:
                asyncio.run(explain_replay(url, files[largest], "re-import"))
                fresh_database(server_url, url)
                asyncio.run(explain_replay(url, files[largest], "first import"))
            if args.cprofile:
                fresh_database(server_url, url)
                profile = Path(tmp) / "import.prof"
                runs.append(
                    run_child("cProfile", files[largest], largest, url, server_url, profile)
                )
                print_cprofile(profile)
        finally:
            if not args.keep:
                asyncio.run(drop_database(server_url))
                print(f"\ndropped {DATABASE}")
    print_table(runs, expected)
    first = next((r for r in runs if r.rows == largest and r.label != "re-import"), None)
    if first is not None:
        rate = first.rows / first.wall_s
        verdict = "meets" if rate >= TARGET_ROWS_PER_S else "BELOW"
        print(
            f"\n{largest:,} rows: {rate:,.0f} rows/s (process wall) {verdict} the target of", end=""
        )
        print(f" {TARGET_ROWS_PER_S:,} rows/s")
    measured = [r for r in runs if r.label not in ("re-import", "cProfile")]
    if len(measured) > 1:
        low, high = measured[0], measured[-1]
        shape = "flat" if high.peak_rss_mb < 1.2 * low.peak_rss_mb else "grows"
        print(
            f"peak RSS {low.peak_rss_mb:.0f} MB at {low.rows:,} rows → {high.peak_rss_mb:.0f} MB"
            f" at {high.rows:,} rows ({shape})"
        )
    if shutil.which("py-spy") is None and not (Path(sys.executable).parent / "py-spy").exists():
        print("(py-spy is not installed: .venv/bin/pip install py-spy for a sampling profile)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
