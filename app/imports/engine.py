"""The bulk importer: stream a CSV file into a staging table with COPY, check it with
set-based SQL, then write it in one statement per resource (see ``sql.write``).

Memory stays flat: the file is parsed record by record and streamed to COPY as CSV
chunks, and the counts come back from SQL (nothing per row returns to Python). A row
that fails a check is reported with its row number (the header is row 1) and reason and
never written; the other rows are. Should the database still refuse a batch (a
constraint no check foresaw), the batch is split in halves inside savepoints until the
refused row is found, so one bad row never aborts the file. ``dry_run`` does it all in
a savepoint that is rolled back.

Rows are keyed on ``external_ref``: a new ref creates a record, a known one updates it
when a column differs and is left alone (no write, no version bump, no audit row) when
nothing does, so re-importing a file changes nothing. On update a blank cell, or an
optional column left out of the header, stores NULL (or the column's default): a blank
``reports_to_ref`` clears the manager's lead, a blank ``parent_ref`` the client's
parent. Every created or updated record gets one audit row (source ``import``).
"""

from __future__ import annotations

import csv
import io
import operator
import random
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import chain, islice
from typing import IO, Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.config import Settings
from app.core.errors import Unprocessable, constraint_message
from app.core.periods import FiscalCalendar
from app.imports import sql
from app.imports.formats import (
    Column,
    Parser,
    fits_currency,
    formats,
    instant_of,
    is_positive,
    utc_text,
)

COPY_ROWS = 10_000  # rows per COPY chunk (about 1 MB for a sales file)
READ_BYTES = 1 << 16  # read and decoded at a time: about 0.5 MB in memory at most
MAX_CELL = 1 << 20  # a longer cell ends the file with a clear error
MAX_REPORTED = 1_000
FUTURE_TOLERANCE = timedelta(minutes=5)


@dataclass
class Resource:
    checks: list[str]
    write: str
    relink: str | None = None
    pairs: str | None = None
    rejected_refs: str | None = None  # repeated after the checks until it refuses none


RESOURCES: dict[str, Resource] = {
    "managers": Resource(
        sql.MANAGERS_CHECKS,
        sql.MANAGERS_WRITE,
        sql.MANAGERS_RELINK,
        rejected_refs=sql.ref_to_rejected_row("reports_to_ref", "managers"),
    ),
    "clients": Resource(
        sql.CLIENTS_CHECKS,
        sql.CLIENTS_WRITE,
        sql.CLIENTS_RELINK,
        rejected_refs=sql.ref_to_rejected_row("parent_ref", "clients"),
    ),
    "assignments": Resource(
        sql.ASSIGNMENTS_CHECKS, sql.ASSIGNMENTS_WRITE, pairs=sql.ASSIGNMENTS_PAIRS
    ),
    "interactions": Resource(sql.INTERACTIONS_CHECKS, sql.INTERACTIONS_WRITE),
    "complaints": Resource(sql.COMPLAINTS_CHECKS, sql.COMPLAINTS_WRITE),
    "sales": Resource(sql.SALES_CHECKS, sql.SALES_WRITE),
    "quotas": Resource(sql.QUOTAS_CHECKS, sql.QUOTAS_WRITE, pairs=sql.QUOTAS_PAIRS),
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


Row = list[Any]  # a staged row: row_no, error, the format's cells, period_start, period_end
Check = Callable[[Row], str | None]


def _cross_checks(resource: str, names: list[str], calendar: FiscalCalendar, cutoff: str) -> Check:
    """Rules over several cells of one row (their parsed text, see ``formats``): a
    function answering the reason a row breaks one, or None. ``cutoff`` is the latest
    accepted instant (:func:`utc_text`); quotas get their period's bounds filled in."""
    at = {name: i for i, name in enumerate(["row_no", "error", *names])}
    late = [at[k] for k in ("closed_at", "occurred_at", "received_at", "responded_at") if k in at]
    limit = instant_of(cutoff)
    # Cells carry their own offsets: only those dated near the cutoff are parsed again.
    near = (limit - timedelta(days=2)).date().isoformat()

    def future(row: Row) -> str | None:
        for i in late:
            moment = row[i]
            if moment is not None and moment[:10] >= near and instant_of(moment) > limit:
                return f"{names[i - 2]} is in the future"
        return None

    def clients(row: Row) -> str | None:
        amount, code = row[at["annual_value"]], row[at["annual_value_currency"]]
        if (amount is None) != (code is None):
            return "annual_value and annual_value_currency go together"
        if amount is not None and not fits_currency(amount, code):
            return "annual_value has more decimals than its currency allows"
        return None

    def assignments(row: Row) -> str | None:
        ends, starts = row[at["ends_at"]], row[at["starts_at"]]
        if ends is not None and instant_of(ends) <= instant_of(starts):
            return "ends_at must be after starts_at"
        return None

    def sales(row: Row) -> str | None:
        amount, code = row[at["amount"]], row[at["currency"]]
        if not fits_currency(amount, code):
            return f"amount has more decimals than {code} allows"
        if row[at["kind"]] == "refund" and is_positive(amount):
            return "a refund's amount cannot be positive"
        return future(row)

    def interactions(row: Row) -> str | None:
        minutes = row[at["duration_minutes"]]
        return future(row) or (
            "duration_minutes cannot be negative"
            if minutes is not None and minutes.startswith("-")
            else None
        )

    def quotas(row: Row) -> str | None:
        try:
            period = calendar.resolve(row[at["period"]])
        except ValueError as exc:
            return str(exc)
        row[-2], row[-1] = utc_text(period.start), utc_text(period.end)
        amount, code, count = (
            row[at["target_amount"]],
            row[at["target_currency"]],
            row[at["target_count"]],
        )
        if row[at["metric"]] == "sales_amount":
            if amount is None or code is None or not is_positive(amount):
                return "sales_amount needs a positive target_amount and target_currency"
            if count is not None or row[at["channel"]] is not None:
                return "sales_amount takes no target_count or channel"
            if not fits_currency(amount, code):
                return f"target_amount has more decimals than {code} allows"
        elif count is None or int(count) <= 0 or amount is not None or code is not None:
            return (
                "interaction_count needs a positive target_count and no target_amount or "
                "target_currency"
            )
        return None

    checks: dict[str, Check] = {
        "clients": clients,
        "assignments": assignments,
        "sales": sales,
        "interactions": interactions,
        "quotas": quotas,
    }
    return checks.get(resource, future)


class _Lines:
    """The uploaded bytes as the lines ``csv.reader`` reads (line ends kept: CRLF, LF or
    CR, as a text file opened with ``newline=""`` gives them), without a leading BOM.

    Read and decoded READ_BYTES at a time (memory stays flat but for one line), each
    chunk cut after its last complete line end so that neither a CRLF nor a UTF-8
    sequence is split (continuation bytes are never CR or LF). A chunk is decoded
    strictly in one call; only one that is not valid UTF-8 is decoded again with
    ``surrogateescape``, each bad byte becoming one character U+DC80..U+DCFF (valid
    UTF-8 never decodes to those), so that the rows holding one are rejected alone.
    ``suspect`` says whether a NUL byte or such a chunk has been read so far: only then
    are cells searched (see :func:`_unstorable`)."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.suspect = False

    def __iter__(self) -> Iterator[str]:
        # chain and StringIO iterate in C: no Python frame per line.
        return chain.from_iterable(self._chunks())

    def _chunks(self) -> Iterator[io.StringIO]:
        pending: list[bytes] = []  # a line without its end yet, in pieces (joined once)
        first = True
        while True:
            data = self.stream.read(READ_BYTES)
            if not data:
                body = b"".join(pending)  # the last line, which has no line end
            else:
                if b"\x00" in data:
                    self.suspect = True
                # A CR as the last byte may be the first half of a CRLF: kept for later.
                cut = max(data.rfind(b"\n"), data.rfind(b"\r", 0, len(data) - 1)) + 1
                if cut:
                    body = b"".join([*pending, data[:cut]])
                    pending = [data[cut:]]
                elif pending and pending[-1].endswith(b"\r"):  # a CR line end after all
                    body, pending = b"".join(pending), [data]
                else:
                    pending.append(data)
                    continue
            if body:
                try:
                    decoded = body.decode()
                except UnicodeDecodeError:
                    self.suspect = True
                    decoded = body.decode(errors="surrogateescape")
                if first:
                    decoded, first = decoded.removeprefix("\ufeff"), False
                yield io.StringIO(decoded, newline="")
            if not data:
                return


# What surrogateescape makes of a byte that is not UTF-8 (see _Lines).
_NOT_UTF8 = re.compile("[\udc80-\udcff]")


def _not_utf8(cells: list[str]) -> tuple[int, int] | None:
    """The first byte that was not UTF-8 in ``cells`` and its column (from 1), if any."""
    for column, cell in enumerate(cells, 1):
        # isascii() reads a flag of the string: most cells are not searched at all.
        if not cell.isascii() and (found := _NOT_UTF8.search(cell)):
            return ord(found.group()) - 0xDC00, column
    return None


@dataclass
class Parsed:
    """An opened file: its CSV reader positioned after the header, and where each column
    of the format is in a record (-1: left out, read as blank) and how it is parsed."""

    reader: Iterator[list[str]]
    lines: _Lines
    header: list[str]
    columns: list[Column]
    plan: list[tuple[int, Parser]]
    required: Callable[[Row], tuple[Any, ...]]
    check: Check
    blank_reasons: Mapping[str, str]


def _open(
    resource: str,
    columns: list[Column],
    stream: IO[bytes],
    calendar: FiscalCalendar,
    blank_reasons: Mapping[str, str] | None = None,
) -> Parsed:
    """Read and check the header. UTF-8 with or without BOM; CRLF, LF and newlines inside
    quoted cells. ``blank_reasons``: see :func:`run_import`. Raises Unprocessable when the
    file is empty, or its header is not UTF-8 or does not fit the format (a column that
    is unknown, repeated, has an empty name, or a required one missing)."""
    csv.field_size_limit(MAX_CELL)
    lines = _Lines(stream)
    # Strict: a quote that is never closed is an error, not a cell that swallows the
    # rest of the file (the rows after it would be lost without a word).
    reader = csv.reader(lines, strict=True)
    try:
        header = [h.strip().lower() for h in next(reader)]
        if not any(header):
            blank = True
            for record in reader:
                if any(cell.strip() for cell in record):
                    blank = False
                    break
            if blank:
                raise Unprocessable("The file is empty.")
            raise Unprocessable("The first line is blank; the header must be row 1.")
    except StopIteration:
        raise Unprocessable("The file is empty.") from None
    except csv.Error as exc:
        raise Unprocessable(f"The header cannot be read as CSV: {_csv_problem(exc)}.") from exc
    # Checked first: the message below would carry such a name (and NUL cannot be stored).
    if lines.suspect and (bad := _not_utf8(header)) is not None:
        raise Unprocessable(
            f"The header is not valid UTF-8 (byte 0x{bad[0]:02x} at column {bad[1]});"
            " save the file as UTF-8."
        )
    if lines.suspect and any("\x00" in h for h in header):
        raise Unprocessable("The header contains a NUL character; save the file as UTF-8.")
    names = [c.name for c in columns]
    problems = []
    if unknown := list(dict.fromkeys(h for h in header if h and h not in names)):
        problems.append(f"unknown column(s) {', '.join(unknown)}")
    if repeated := [name for name in names if header.count(name) > 1]:
        where = {n: ", ".join(str(i) for i, h in enumerate(header, 1) if h == n) for n in repeated}
        problems.append(
            f"repeated column(s) {', '.join(f'{n} (positions {where[n]})' for n in repeated)}"
        )
    # An empty name (a trailing comma too) is refused, not ignored: the cells under it
    # would be dropped without a word.
    if empty := [str(i) for i, h in enumerate(header, 1) if not h]:
        plural = "s" if len(empty) > 1 else ""
        problems.append(f"empty column name{plural} at position{plural} {', '.join(empty)}")
    if missing := [c.name for c in columns if c.required and c.name not in header]:
        problems.append(f"missing required column(s) {', '.join(missing)}")
    if problems:
        raise Unprocessable(
            f"The header does not fit the format: {'; '.join(problems)}; "
            f"expected {', '.join(names)}."
        )
    plan = [(header.index(c.name) if c.name in header else -1, c.parse) for c in columns]
    # Positions in a staged row of the required columns (2: after row_no and error).
    required = operator.itemgetter(*(i + 2 for i, c in enumerate(columns) if c.required), 0)
    cutoff = utc_text(datetime.now(UTC) + FUTURE_TOLERANCE)
    check = _cross_checks(resource, names, calendar, cutoff)
    return Parsed(reader, lines, header, columns, plan, required, check, dict(blank_reasons or {}))


def _unstorable(cells: list[str], header: list[str]) -> str | None:
    """Why a record's cells cannot be stored as text, if so: a byte that is not UTF-8
    (see :class:`_Lines`; its column counted from 1 and named) or a NUL character
    (PostgreSQL text cannot hold NUL)."""
    if (bad := _not_utf8(cells)) is not None:
        byte, column = bad
        name = header[column - 1]
        return f"row is not valid UTF-8 (byte 0x{byte:02x} at column {column}, {name})"
    if any("\x00" in cell for cell in cells):
        return "contains a NUL character"
    return None


def _reason(parsed: Parsed, cells: list[str]) -> tuple[str, str | None]:
    """Why a record's cells do not parse (the first bad column in format order) and its
    external_ref when that parsed. A blank required cell is "<column> is required" unless
    ``blank_reasons`` says why it is blank."""
    ref = None
    for (index, parse), column in zip(parsed.plan, parsed.columns, strict=True):
        try:
            value = parse(cells[index].strip())
        except ValueError as exc:
            return f"{column.name}: {exc}", ref
        if value is None and column.required:
            return parsed.blank_reasons.get(column.name, f"{column.name} is required"), ref
        if column.name == "external_ref":
            ref = value
    raise AssertionError("the cells parse")  # pragma: no cover


def _records(parsed: Parsed) -> Iterator[Row]:
    """The staged rows, record by record: ``[row_no, None, cells..., period_start,
    period_end]`` as COPY text (None is NULL), or ``[row_no, reason, external_ref, None...]``
    for a row that cannot be written (one with a byte that is not UTF-8 among them).
    Blank records are skipped but keep their number. Raises Unprocessable for a record
    that is not CSV."""
    reader, lines, header, plan, required, check = (
        parsed.reader,
        parsed.lines,
        parsed.header,
        parsed.plan,
        parsed.required,
        parsed.check,
    )
    width = len(header)
    nothing = [None] * (len(plan) + 1)
    row_no = 1
    try:
        for cells in reader:
            row_no += 1
            ref: str | None = None
            if len(cells) != width:
                if not any(cell.strip() for cell in cells):
                    continue  # a blank line: no row, but it keeps its number
                error: str | None = f"has {len(cells)} cells, the header has {width}"
            elif lines.suspect and (problem := _unstorable(cells, header)) is not None:
                error, ref = problem, _clean_ref(parsed, cells)
            else:
                cells.append("")  # what a left-out column (index -1) reads
                try:
                    row: Row = [
                        row_no,
                        None,
                        *[parse(cells[i].strip()) for i, parse in plan],
                        None,
                        None,
                    ]
                    bad = None in required(row)
                except ValueError:
                    bad = True
                if bad:
                    if not any(cell.strip() for cell in cells):
                        continue  # separators only
                    error, ref = _reason(parsed, cells)
                else:
                    error = check(row)
                    if error is None:
                        yield row
                        continue
                    ref = row[2]
            yield [row_no, error, ref, *nothing]
    except csv.Error as exc:
        raise Unprocessable(
            f"Row {row_no + 1} cannot be read as CSV: {_csv_problem(exc)}."
        ) from exc


def _csv_problem(exc: csv.Error) -> str:
    """``csv``'s message, with what it means when a quote is left open."""
    message = str(exc)
    if "unexpected end of data" in message:
        return f"{message} (a quoted cell is not closed)"
    return message


def _clean_ref(parsed: Parsed, cells: list[str]) -> str | None:
    """The external_ref of a row that cannot be stored, when that cell itself can."""
    cell = cells[parsed.plan[0][0]].strip()  # external_ref: first and required
    if "\x00" in cell or _not_utf8([cell]) is not None:
        return None
    try:
        return parsed.plan[0][1](cell)
    except ValueError:
        return None


async def _stage(
    conn: AsyncConnection,
    resource: str,
    columns: list[Column],
    stream: IO[bytes],
    calendar: FiscalCalendar,
    blank_reasons: Mapping[str, str] | None = None,
) -> int:
    """Load the file into the temporary table ``import_rows``; answers its row count.
    The rows go to COPY as CSV text in chunks while the next ones are parsed, so the
    server parses its side (numbers, instants) at the same time."""
    parsed = _open(resource, columns, stream, calendar, blank_reasons)
    await conn.execute(text("DROP TABLE IF EXISTS import_rows"))
    column_ddl = ", ".join(f"{c.name} {c.pg_type}" for c in columns)
    extra_ddl = ", ".join(f"{name} {kind}" for name, kind in EXTRA_COLUMNS)
    await conn.execute(
        text(
            f"CREATE TEMP TABLE import_rows (row_no int PRIMARY KEY, error text,"
            f" {column_ddl}, {extra_ddl}) ON COMMIT DROP"
        )
    )
    raw = (await conn.get_raw_connection()).driver_connection
    assert raw is not None
    names = ["row_no", "error", *(c.name for c in columns), "period_start", "period_end"]
    records = _records(parsed)
    failed: list[Unprocessable] = []

    async def chunks() -> AsyncIterator[bytes]:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")  # CR and LF in cells get quoted
        while True:
            try:
                writer.writerows(islice(records, COPY_ROWS))
            except Unprocessable as exc:
                failed.append(exc)  # raised once COPY has ended cleanly
                return
            data = buffer.getvalue()
            if not data:
                return
            buffer.seek(0)
            buffer.truncate()
            yield data.encode()

    status = await raw.copy_to_table("import_rows", source=chunks(), columns=names, format="csv")
    if failed:
        raise failed[0]
    await conn.execute(text("ANALYZE import_rows"))
    return int(status.split()[-1])


@dataclass
class Written:
    """What the write statements of one import did: rows created and updated, and
    whether a batch had to be split (a refused row)."""

    created: int = 0
    updated: int = 0
    split: bool = False
    refused: int = 0


# Rows the database may refuse (constraints no check foresaw) before the importer stops
# looking for them one by one: each costs ~log2(batch) savepoints, and thousands of
# savepoints exhaust the server's lock table. The rest of such a range is reported, not
# written; the file can be imported again once the named rows are fixed.
MAX_REFUSED = 100


async def _apply(
    conn: AsyncConnection, spec: Resource, binds: dict[str, Any], lo: int, hi: int, out: Written
) -> None:
    """Write rows ``lo..hi`` in one savepoint; when the database refuses, split the range
    until the refused row is found and marked, so nothing of it stays and the others go
    in. (A link to a row of a later half is set by ``relink`` at the end.)"""
    savepoint = await conn.begin_nested()
    try:
        row = (await conn.execute(text(spec.write), {**binds, "lo": lo, "hi": hi})).one()
        await savepoint.commit()
        out.created += row.created
        out.updated += row.updated
    except DBAPIError as exc:
        await savepoint.rollback()
        out.split = True
        if out.refused >= MAX_REFUSED:
            await conn.execute(
                text(
                    "UPDATE import_rows SET error = :e"
                    " WHERE row_no BETWEEN :lo AND :hi AND error IS NULL"
                ),
                {
                    "e": f"not written: the database refused more than {MAX_REFUSED} rows"
                    " of this file; fix the rows it names and import the file again",
                    "lo": lo,
                    "hi": hi,
                },
            )
            return
        if lo >= hi:
            out.refused += 1
            await conn.execute(
                text("UPDATE import_rows SET error = :e WHERE row_no = :n AND error IS NULL"),
                {"e": _refusal(exc), "n": lo},
            )
            return
        mid = (lo + hi) // 2
        await _apply(conn, spec, binds, lo, mid, out)
        await _apply(conn, spec, binds, mid + 1, hi, out)


def _refusal(exc: DBAPIError) -> str:
    """Why the database refused one row: the API's message for a known constraint, else
    the constraint's name (something a person can look up), else a generic reason."""
    name = getattr(getattr(exc.orig, "__cause__", None), "constraint_name", None)
    if isinstance(exc, IntegrityError) and name:
        return constraint_message(name) or f"the database refused this row (constraint {name})"
    return "the database refused this row"


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
    blank_reasons: Mapping[str, str] | None = None,
) -> ImportReport:
    """Import ``stream`` (CSV, our format for ``resource``) in the session's transaction.

    ``blank_reasons`` maps a required column to the reason reported for a row that
    leaves it blank, instead of "<column> is required" (a data-set loader knows why
    the cell it wrote is blank). Raises Unprocessable for a file that cannot be read at
    all (empty, a header that is not UTF-8 or does not fit, a record that is not CSV);
    row problems, a row that is not UTF-8 among them, are reported, not raised."""
    started = time.perf_counter()
    if resource not in RESOURCES:
        raise Unprocessable.field("resource", f"Cannot import {resource!r}.")
    spec = RESOURCES[resource]
    columns = formats(settings.org.time_zone)[resource]
    calendar = FiscalCalendar(settings.org.time_zone, settings.org.fiscal_year_start_month)
    report = ImportReport(resource=resource, dry_run=dry_run)
    conn = await session.connection()
    # UTC: audit values and reasons render instants alike whatever the server's zone;
    # work_mem: the sorts and hashes over a large file stay in memory.
    for setting in ("statement_timeout = 0", "TimeZone = 'UTC'", "work_mem = '64MB'"):
        await conn.execute(text(f"SET LOCAL {setting}"))
    report.rows = await _stage(conn, resource, columns, stream, calendar, blank_reasons)
    for check in (sql.DUPLICATES, *spec.checks):
        await conn.execute(text(check))
    if spec.rejected_refs is not None:
        while (await conn.execute(text(spec.rejected_refs))).rowcount:
            pass
    binds = {
        "actor": actor,
        "roles": roles,
        "request_id": request_id,
        "import_id": import_id,
        "id_salt": random.getrandbits(12),
    }
    if spec.pairs:
        await _resolve_pairs(conn, spec.pairs)
    savepoint = await conn.begin_nested()
    last_row = (
        await conn.execute(text("SELECT coalesce(max(row_no), 1) FROM import_rows"))
    ).scalar_one()
    written = Written()
    await _apply(conn, spec, binds, 2, last_row, written)
    if spec.relink and written.split:
        # Links to rows that a split wrote in a later half. A refusal here leaves those
        # links as they were (the rows themselves are in).
        final = await conn.begin_nested()
        try:
            written.updated += (await conn.execute(text(spec.relink), binds)).scalar_one()
            await final.commit()
        except DBAPIError:
            await final.rollback()
    report.created, report.updated = written.created, written.updated
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
