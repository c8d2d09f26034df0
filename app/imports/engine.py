"""The bulk importer: stream a CSV file into a staging table with COPY, check it with
set-based SQL, then upsert on ``external_ref`` in one statement per resource.

Memory stays flat: the file is read record by record and sent in COPY batches. A row
that fails a check is reported with its row number (the header is row 1) and reason and
never written; the other rows are. Should the database still refuse a batch (a
constraint no check foresaw), the batch is split in halves inside savepoints until the
refused row is found, so one bad row never aborts the file. ``dry_run`` does it all in
a savepoint that is rolled back. Audit rows (source ``import``) are written with the
upserts.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import IO, Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.config import Settings
from app.core.errors import Unprocessable, integrity_to_error
from app.core.periods import FiscalCalendar
from app.imports import sql
from app.imports.formats import Column, fits_currency, formats

BATCH_ROWS = 5_000
MAX_CELL = 1 << 20  # a longer cell ends the file with a clear error
MAX_REPORTED = 1_000
FUTURE_TOLERANCE = timedelta(minutes=5)


@dataclass
class Resource:
    checks: list[str]
    upsert: str
    after: list[str] = field(default_factory=list)
    history: str | None = None
    pairs: str | None = None


RESOURCES: dict[str, Resource] = {
    "managers": Resource(sql.MANAGERS_CHECKS, sql.MANAGERS_UPSERT, [sql.MANAGERS_AFTER]),
    "clients": Resource(sql.CLIENTS_CHECKS, sql.CLIENTS_UPSERT, [sql.CLIENTS_AFTER]),
    "assignments": Resource(
        sql.ASSIGNMENTS_CHECKS, sql.ASSIGNMENTS_UPSERT, pairs=sql.ASSIGNMENTS_PAIRS
    ),
    "interactions": Resource(sql.INTERACTIONS_CHECKS, sql.INTERACTIONS_UPSERT),
    "complaints": Resource(
        sql.COMPLAINTS_CHECKS, sql.COMPLAINTS_UPSERT, history=sql.COMPLAINTS_HISTORY
    ),
    "sales": Resource(sql.SALES_CHECKS, sql.SALES_UPSERT),
    "quotas": Resource(sql.QUOTAS_CHECKS, sql.QUOTAS_UPSERT, pairs=sql.QUOTAS_PAIRS),
}
EXTRA_COLUMNS = (
    ("client_id", "uuid"),
    ("manager_id", "uuid"),
    ("period_start", "timestamptz"),
    ("period_end", "timestamptz"),
)


@dataclass
class ImportReport:
    resource: str
    dry_run: bool
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    rejections: list[dict[str, Any]] = field(default_factory=list)
    duration_ms: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "resource": self.resource,
            "dry_run": self.dry_run,
            "rows": self.rows,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "rejected": self.rejected,
            "rejections": self.rejections,
            "rejections_truncated": self.rejected > len(self.rejections),
            "duration_ms": self.duration_ms,
        }


def _cross_checks(resource: str, row: dict[str, Any], calendar: FiscalCalendar) -> None:
    """Rules over several cells of one row; raise ValueError with the reason."""
    now = datetime.now(UTC)
    if resource == "clients" and (row["annual_value"] is None) != (
        row["annual_value_currency"] is None
    ):
        raise ValueError("annual_value and annual_value_currency go together")
    if resource == "clients" and row["annual_value"] is not None:
        if not fits_currency(row["annual_value"], row["annual_value_currency"]):
            raise ValueError("annual_value has more decimals than its currency allows")
    if resource == "assignments" and row["ends_at"] and row["ends_at"] <= row["starts_at"]:
        raise ValueError("ends_at must be after starts_at")
    if resource == "sales":
        if not fits_currency(row["amount"], row["currency"]):
            raise ValueError(f"amount has more decimals than {row['currency']} allows")
        if row["kind"] == "refund" and row["amount"] > 0:
            raise ValueError("a refund's amount cannot be positive")
    for key in ("closed_at", "occurred_at", "received_at"):
        if row.get(key) and row[key] > now + FUTURE_TOLERANCE:
            raise ValueError(f"{key} is in the future")
    if resource == "interactions" and (row["duration_minutes"] or 0) < 0:
        raise ValueError("duration_minutes cannot be negative")
    if resource == "quotas":
        period = calendar.resolve(row["period"])
        row["period_start"], row["period_end"] = period.start, period.end
        if row["metric"] == "sales_amount":
            amount, code = row["target_amount"], row["target_currency"]
            if amount is None or code is None or amount <= 0:
                raise ValueError("sales_amount needs a positive target_amount and target_currency")
            if row["target_count"] is not None or row["channel"] is not None:
                raise ValueError("sales_amount takes no target_count or channel")
            if not fits_currency(amount, code):
                raise ValueError(f"target_amount has more decimals than {code} allows")
        elif not row["target_count"] or row["target_count"] <= 0 or row["target_amount"]:
            raise ValueError("interaction_count needs a positive target_count and no amount")


def _records(
    resource: str, columns: list[Column], stream: IO[bytes], calendar: FiscalCalendar
) -> Iterator[tuple[Any, ...]]:
    """Parse the file record by record into staging tuples (row_no, error, values...).
    UTF-8 with or without BOM; CRLF, LF and newlines inside quoted cells."""
    csv.field_size_limit(MAX_CELL)
    reader = csv.reader(io.TextIOWrapper(stream, encoding="utf-8-sig", newline=""))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise Unprocessable("The file is empty.") from None
    except UnicodeDecodeError as exc:
        raise Unprocessable("The file is not UTF-8.") from exc
    names = [c.name for c in columns]
    unknown = [h for h in header if h not in names]
    missing = [c.name for c in columns if c.required and c.name not in header]
    if unknown or missing:
        raise Unprocessable(
            "The header does not fit the format: "
            + (f"unknown column(s) {', '.join(unknown)}; " if unknown else "")
            + (f"missing required column(s) {', '.join(missing)}; " if missing else "")
            + f"expected {', '.join(names)}.",
        )
    index = {name: header.index(name) for name in names if name in header}
    row_no = 1
    try:
        for cells in reader:
            row_no += 1
            if not any(cell.strip() for cell in cells):
                continue  # a blank line: no row, but it keeps its number
            values: dict[str, Any] = {name: None for name in names}
            values.update(period_start=None, period_end=None)
            error = None
            if len(cells) != len(header):
                error = f"has {len(cells)} cells, the header has {len(header)}"
            elif any("\x00" in cell for cell in cells):
                error = "contains a NUL character"
            else:
                for column in columns:
                    raw = cells[index[column.name]].strip() if column.name in index else ""
                    if raw == "":
                        if column.required:
                            error = f"{column.name} is required"
                            break
                        continue
                    try:
                        values[column.name] = column.parse(raw)
                    except ValueError as exc:
                        error = f"{column.name}: {exc}"
                        break
                if error is None:
                    try:
                        _cross_checks(resource, values, calendar)
                    except ValueError as exc:
                        error = str(exc)
            if error is not None:
                keep = {"external_ref": values["external_ref"] or None}
                yield (row_no, error, *(keep.get(c.name) for c in columns), None, None)
            else:
                yield (
                    row_no,
                    None,
                    *(values[c.name] for c in columns),
                    values["period_start"],
                    values["period_end"],
                )
    except UnicodeDecodeError as exc:
        raise Unprocessable(f"Row {row_no + 1} is not valid UTF-8.") from exc
    except csv.Error as exc:
        raise Unprocessable(f"Row {row_no + 1} cannot be read as CSV: {exc}.") from exc


async def _stage(
    conn: AsyncConnection,
    resource: str,
    columns: list[Column],
    stream: IO[bytes],
    calendar: FiscalCalendar,
) -> int:
    await conn.execute(text("DROP TABLE IF EXISTS import_rows"))
    column_ddl = ", ".join(f"{c.name} {c.pg_type}" for c in columns)
    extra_ddl = ", ".join(f"{name} {kind}" for name, kind in EXTRA_COLUMNS)
    await conn.execute(
        text(
            f"CREATE TEMP TABLE import_rows (row_no int PRIMARY KEY, error text,"
            f" in_batch boolean NOT NULL DEFAULT true, {column_ddl}, {extra_ddl})"
            " ON COMMIT DROP"
        )
    )
    raw = (await conn.get_raw_connection()).driver_connection
    assert raw is not None
    names = ["row_no", "error", *(c.name for c in columns), "period_start", "period_end"]
    batch: list[tuple[Any, ...]] = []
    count = 0
    for record in _records(resource, columns, stream, calendar):
        batch.append(record)
        if len(batch) >= BATCH_ROWS:
            await raw.copy_records_to_table("import_rows", records=batch, columns=names)
            count += len(batch)
            batch = []
    if batch:
        await raw.copy_records_to_table("import_rows", records=batch, columns=names)
        count += len(batch)
    await conn.execute(text("ANALYZE import_rows"))
    return count


async def _write(conn: AsyncConnection, spec: Resource, binds: dict[str, Any]) -> list[Any]:
    """The upsert and the after-steps for the rows ``in_batch``; ``(id, created)`` rows."""
    rows = [(r.id, r.created) for r in (await conn.execute(text(spec.upsert), binds)).all()]
    for statement in spec.after:
        rows += [(r.id, False) for r in (await conn.execute(text(statement), binds)).all()]
    return rows


async def _apply(
    conn: AsyncConnection,
    spec: Resource,
    binds: dict[str, Any],
    lo: int,
    hi: int,
    whole: bool = False,
) -> list[Any]:
    """Write rows ``lo..hi`` in one savepoint; when the database refuses, split the range
    until the refused row is found and marked, so nothing of it stays and the others go
    in. (A parent or lead named by a row of a later half is linked by the final pass.)"""
    if not whole:  # staged rows start with in_batch = true: the first try needs no UPDATE
        await conn.execute(
            text("UPDATE import_rows SET in_batch = (row_no BETWEEN :lo AND :hi)"),
            {"lo": lo, "hi": hi},
        )
    savepoint = await conn.begin_nested()
    try:
        rows = await _write(conn, spec, binds)
        await savepoint.commit()
        return rows
    except DBAPIError as exc:
        await savepoint.rollback()
        if lo >= hi:
            reason = (
                integrity_to_error(exc).detail
                if isinstance(exc, IntegrityError)
                else "the database refused this row"
            )
            await conn.execute(
                text("UPDATE import_rows SET error = :e WHERE row_no = :n AND error IS NULL"),
                {"e": reason, "n": lo},
            )
            return []
        mid = (lo + hi) // 2
        return await _apply(conn, spec, binds, lo, mid) + await _apply(
            conn, spec, binds, mid + 1, hi
        )


async def _resolve_pairs(conn: AsyncConnection, statement: str) -> None:
    """Refuse, in row order, each row that conflicts with an earlier row that went in."""
    pairs = (await conn.execute(text(statement))).all()
    if not pairs:
        return
    refused: dict[int, str] = {}
    for earlier, later, reason in sorted(pairs, key=lambda p: (p[1], p[0])):
        if later not in refused and earlier not in refused:
            refused[later] = reason
    await conn.execute(
        text(
            "UPDATE import_rows r SET error = v.reason FROM unnest(CAST(:rows AS int[]),"
            " CAST(:reasons AS text[])) AS v(row_no, reason) WHERE r.row_no = v.row_no"
        ),
        {"rows": list(refused), "reasons": list(refused.values())},
    )


async def run_import(
    session: AsyncSession,
    settings: Settings,
    resource: str,
    stream: IO[bytes],
    *,
    dry_run: bool,
    actor: str,
    roles: list[str],
    request_id: str | None,
    import_id: str,
) -> ImportReport:
    """Import ``stream`` (CSV, our format for ``resource``) in the session's transaction.

    Raises Unprocessable for a file that cannot be read at all (empty, not UTF-8, a
    header that does not fit); row problems are reported, not raised."""
    started = time.perf_counter()
    if resource not in RESOURCES:
        raise Unprocessable.field("resource", f"Cannot import {resource!r}.")
    spec = RESOURCES[resource]
    columns = formats(settings.org.time_zone)[resource]
    calendar = FiscalCalendar(settings.org.time_zone, settings.org.fiscal_year_start_month)
    report = ImportReport(resource=resource, dry_run=dry_run)
    conn = await session.connection()
    await conn.execute(text("SET LOCAL statement_timeout = 0"))
    report.rows = await _stage(conn, resource, columns, stream, calendar)
    for check in (sql.DUPLICATES, *spec.checks):
        await conn.execute(text(check))
    binds = {
        "actor": actor,
        "roles": roles,
        "request_id": request_id,
        "import_id": import_id,
    }
    if spec.pairs:
        await _resolve_pairs(conn, spec.pairs)
    savepoint = await conn.begin_nested()
    last_row = (
        await conn.execute(text("SELECT coalesce(max(row_no), 1) FROM import_rows"))
    ).scalar_one()
    written = await _apply(conn, spec, binds, 2, last_row, whole=True)
    if spec.after:
        # Links to rows that a split wrote in a later half; without a split this changes
        # nothing. A refusal here leaves those links unset (the rows themselves are in).
        await conn.execute(text("UPDATE import_rows SET in_batch = (error IS NULL)"))
        final = await conn.begin_nested()
        try:
            for statement in spec.after:
                rows = (await conn.execute(text(statement), binds)).all()
                written += [(r.id, False) for r in rows]
            await final.commit()
        except DBAPIError:
            await final.rollback()
    created = {row_id for row_id, is_new in written if is_new}
    updated = {row_id for row_id, is_new in written if not is_new} - created
    if spec.history and created:
        await conn.execute(text(spec.history), {"actor": actor, "ids": list(created)})
    report.created, report.updated = len(created), len(updated)
    summary = (
        await conn.execute(
            text("SELECT count(*) FILTER (WHERE error IS NOT NULL) FROM import_rows")
        )
    ).scalar_one()
    report.rejected = int(summary)
    report.unchanged = report.rows - report.rejected - report.created - report.updated
    report.rejections = [
        {"row": r.row_no, "external_ref": r.external_ref, "reason": r.error}
        for r in await conn.execute(
            text(
                "SELECT row_no, external_ref, error FROM import_rows WHERE error IS NOT NULL"
                " ORDER BY row_no LIMIT :n"
            ),
            {"n": MAX_REPORTED},
        )
    ]
    if dry_run:
        await savepoint.rollback()
    else:
        await savepoint.commit()
    report.duration_ms = round((time.perf_counter() - started) * 1000)
    return report
