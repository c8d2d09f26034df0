"""CSV variants of the reports: content negotiation and safe, streamable CSV.

A report is CSV when the request's ``Accept`` header prefers ``text/csv`` to
``application/json`` (higher q-value, or JSON not acceptable); JSON otherwise, ties
included. The CSV is UTF-8 with a byte-order mark (so spreadsheet programs detect the
encoding of Arabic, Hebrew, Greek... names), a header row and CRLF line ends (RFC 4180).
Cells that a spreadsheet would run as a formula are neutralised as OWASP's "CSV
Injection" page advises: a cell starting with ``=``, ``+``, ``-``, ``@``, tab or carriage
return gets a leading single quote. Plain decimal numbers (``-12.50``) are left alone:
they are not formulas, and a quote would turn them into text.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from fastapi.responses import StreamingResponse

CSV_MEDIA_TYPE = "text/csv"
JSON_MEDIA_TYPE = "application/json"
BOM = "\ufeff"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


def _quality(accept: str, media_type: str) -> float:
    """The q-value ``accept`` gives ``media_type`` (RFC 9110 §12.5.1: the most specific
    matching range wins; no match is 0)."""
    main = media_type.partition("/")[0]
    best: tuple[int, float] = (-1, 0.0)
    for part in accept.split(","):
        fields = [f.strip() for f in part.split(";")]
        kind = fields[0].lower()
        if not kind:
            continue
        q = 1.0
        for param in fields[1:]:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    q = 0.0
        range_main, _, range_sub = kind.partition("/")
        if kind == media_type:
            specificity = 2
        elif range_main == main and range_sub == "*":
            specificity = 1
        elif kind == "*/*":
            specificity = 0
        else:
            continue
        if specificity > best[0]:
            best = (specificity, q)
    return best[1]


def wants_csv(accept: str | None) -> bool:
    """Whether ``Accept`` prefers CSV to JSON (JSON wins ties and the default)."""
    if not accept:
        return False
    csv_q = _quality(accept, CSV_MEDIA_TYPE)
    return csv_q > 0 and csv_q > _quality(accept, JSON_MEDIA_TYPE)


def cell(value: Any) -> str:
    """A value as CSV text: ``None`` empty, instants RFC 3339 in UTC (``Z``, as in JSON),
    enums by value, and formula-like text prefixed with a single quote."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    text = str(getattr(value, "value", value))
    if text.startswith(FORMULA_STARTS) and not _NUMBER.match(text):
        return "'" + text
    return text


def csv_lines(rows: Iterable[Sequence[Any]]) -> str:
    """``rows`` as CSV text with CRLF line ends, every cell through :func:`cell`."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    for row in rows:
        writer.writerow([cell(v) for v in row])
    return buffer.getvalue()


def csv_response(
    header: Sequence[str], chunks: AsyncIterator[list[Sequence[Any]]], filename: str
) -> StreamingResponse:
    """A streamed CSV attachment: the BOM and ``header``, then each chunk of rows as it
    comes (memory stays flat whatever the row count)."""

    async def body() -> AsyncIterator[bytes]:
        yield (BOM + csv_lines([header])).encode("utf-8")
        async for rows in chunks:
            if rows:
                yield csv_lines(rows).encode("utf-8")

    return StreamingResponse(
        body(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


async def one_chunk(rows: list[Sequence[Any]]) -> AsyncIterator[list[Sequence[Any]]]:
    """An already computed (small) report as a single chunk for :func:`csv_response`."""
    yield rows


def filename(report: str, at: datetime | None = None) -> str:
    """``<report>-<UTC date and time>.csv``, e.g. ``account-status-20261201T093000Z.csv``."""
    return f"{report}-{(at or datetime.now(UTC)).astimezone(UTC):%Y%m%dT%H%M%SZ}.csv"


CSV_DESCRIPTION = (
    "JSON by default; CSV (UTF-8 with BOM, header row, CRLF, formula-like cells prefixed "
    "with `'`) when `Accept` prefers `text/csv`."
)


def csv_openapi(description: str = CSV_DESCRIPTION) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entry documenting the ``text/csv`` variant of a 200."""
    return {
        200: {
            "description": description,
            "content": {CSV_MEDIA_TYPE: {"schema": {"type": "string"}}},
        }
    }
