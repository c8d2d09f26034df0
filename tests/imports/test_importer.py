"""The bulk importer (issue 8): file framing (BOM, CRLF, quoted newlines, header), the
per-row report, all-or-nothing per row, idempotent re-imports, dry runs, audit rows, and
the ``POST /v1/imports`` job.

Files are small CSVs built in memory. ``run_import`` runs in the ``connection``
fixture's rolled-back transaction (read back with SQL on the same connection); the HTTP
job runs in a background task with its own session, so those tests use ``live_client``
(real commits, truncated afterwards).
"""

from __future__ import annotations

import asyncio
import csv
import io
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from app.config import Settings
from app.core.auth import Role
from app.core.errors import Unprocessable
from app.imports import engine
from app.imports.engine import MAX_REFUSED, RESOURCES, run_import
from app.imports.router import ImportResource
from tests.assertions import assert_invalid, assert_problem
from tests.conftest import make_token
from tests.factories import count_rows

Rows = Sequence[Sequence[str]]
ACTOR = "test-importer"
REQUEST_ID = "req-import-test"
JOB_TIMEOUT_S = 15.0

# --- A small organisation in our import formats ---------------------------------------

MANAGERS: Rows = [
    ["external_ref", "email", "full_name", "role", "reports_to_ref", "time_zone", "region"]
    + ["active"],
    ["t-lead", "lead@imp.test", "Lea Lead", "team_lead", "", "Europe/Budapest", "EMEA", "true"],
    ["t-ann", "ann@imp.test", "Ann Agent", "account_manager", "t-lead", "", "EMEA", "true"],
    ["t-bob", "bob@imp.test", "Bob Agent", "account_manager", "t-lead", "Asia/Tokyo", "", "yes"],
    ["t-old", "old@imp.test", "Old Timer", "account_manager", "", "", "", "false"],
]
CLIENTS: Rows = [
    ["external_ref", "name", "segment", "lifecycle_stage", "country", "currency"]
    + ["annual_value", "annual_value_currency", "renewal_date", "parent_ref"],
    ["t-acme", "Acme Kft.", "enterprise", "active", "HU", "HUF"]
    + ["1250000.50", "HUF", "2025-06-30", ""],
    ["t-nihon", "日本商事", "key", "active", "JP", "JPY", "", "", "", ""],
    ["t-usco", "US Co", "mid_market", "active", "us", "usd", "", "", "", "t-acme"],
    ["t-free", "Free Agent Ltd", "small", "prospect", "GB", "GBP", "", "", "", ""],
]
ASSIGNMENTS: Rows = [
    ["external_ref", "client_ref", "manager_ref", "role", "starts_at", "ends_at", "reason"],
    ["t-acme-ann", "t-acme", "t-ann", "primary", "2024-01-01", "", ""],
    ["t-nihon-bob", "t-nihon", "t-bob", "primary", "2024-01-01T09:00:00+09:00", "", ""],
    ["t-usco-bob", "t-usco", "t-bob", "primary", "2024-01-01", "2025-01-01", "until handover"],
    ["t-usco-ann", "t-usco", "t-ann", "secondary", "2024-01-01", "", ""],
]
QUOTAS: Rows = [
    ["external_ref", "manager_ref", "metric", "period", "target_amount", "target_currency"]
    + ["target_count", "channel"],
    ["t-q-ann", "t-ann", "sales_amount", "FY2024-Q1", "1000000.00", "HUF", "", ""],
    ["t-q-ann-calls", "t-ann", "interaction_count", "FY2024-Q1", "", "", "20", "phone"],
]
SALES: Rows = [
    ["external_ref", "client_ref", "amount", "currency", "closed_at", "kind", "product"]
    + ["credited_manager_ref"],
    ["t-s1", "t-acme", "250000.00", "HUF", "2024-02-10", "new", "Widgets", ""],
    ["t-s2", "t-nihon", "120000", "JPY", "2024-03-01T10:00:00+09:00", "renewal", "", ""],
    ["t-s3", "t-usco", "-50.00", "USD", "2024-03-05", "refund", "", "t-ann"],
]
INTERACTIONS: Rows = [
    ["external_ref", "client_ref", "manager_ref", "channel", "direction", "occurred_at"]
    + ["duration_minutes", "subject", "notes", "sentiment"],
    ["t-i1", "t-acme", "t-ann", "phone", "outbound", "2024-02-01T10:00:00Z"]
    + ["15", "Kick-off", "Line one\nLine two", "positive"],
    ["t-i2", "t-nihon", "t-bob", "meeting", "inbound", "2024-02-02", "60", "Review", "", ""],
]
COMPLAINTS: Rows = [
    ["external_ref", "client_ref", "title", "description", "category", "severity", "channel"]
    + ["received_at", "status", "responded_at", "resolution"],
    ["t-c1", "t-acme", "Late delivery", "", "delivery", "high", "email"]
    + ["2024-02-05T08:00:00Z", "open", "", ""],
    ["t-c2", "t-nihon", "Wrong invoice", "", "billing", "medium", "phone"]
    + ["2024-02-06", "closed", "2024-02-08", "Refunded"],
]
ORG: dict[str, Rows] = {
    "managers": MANAGERS,
    "clients": CLIENTS,
    "assignments": ASSIGNMENTS,
    "quotas": QUOTAS,
    "sales": SALES,
    "interactions": INTERACTIONS,
    "complaints": COMPLAINTS,
}
CLIENT_OWNED = ("assignments", "sales", "interactions", "complaints")
TABLES = tuple(ORG)


def csv_bytes(rows: Rows, *, bom: bool = False, newline: str = "\n") -> bytes:
    """``rows`` as a CSV file (quoted only where needed), UTF-8, optional BOM."""
    out = io.StringIO(newline="")
    csv.writer(out, lineterminator=newline).writerows(rows)
    data = out.getvalue().encode("utf-8")
    return b"\xef\xbb\xbf" + data if bom else data


def assert_consistent(report: dict[str, Any]) -> None:
    """Every row is counted exactly once: created, updated, unchanged or rejected."""
    counts = [report[k] for k in ("created", "updated", "unchanged", "rejected")]
    assert all(n >= 0 for n in counts), report
    assert sum(counts) == report["rows"], report
    assert report["rejected"] == len(report["rejections"]) or report["rejections_truncated"]


def reasons(report: dict[str, Any]) -> dict[int, str]:
    """Rejected rows: row number → reason."""
    return {r["row"]: r["reason"] for r in report["rejections"]}


@dataclass
class Importer:
    """Runs ``run_import`` in the test's transaction; remembers the last import id."""

    sessionmaker: async_sessionmaker[AsyncSession]
    settings: Settings
    last_id: str = ""

    async def __call__(
        self,
        resource: str,
        data: bytes | Rows,
        *,
        dry_run: bool = False,
        check: bool = True,
        blank_reasons: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Import ``data``; with ``check``, assert the report's counts add up."""
        payload = data if isinstance(data, bytes) else csv_bytes(data)
        self.last_id = str(uuid.uuid4())
        async with self.sessionmaker.begin() as session:
            report = await run_import(
                session,
                self.settings,
                resource,
                io.BytesIO(payload),
                dry_run=dry_run,
                actor=ACTOR,
                roles=["admin"],
                request_id=REQUEST_ID,
                import_id=self.last_id,
                blank_reasons=blank_reasons,
            )
        result = report.as_dict()
        if check:
            assert_consistent(result)
        return result


async def refs(conn: AsyncConnection, table: str) -> set[str]:
    result = await conn.execute(text(f"SELECT external_ref FROM {table}"))
    return {r[0] for r in result if r[0] is not None}


async def import_audit(conn: AsyncConnection, import_id: str) -> list[Any]:
    """Audit rows written by one import (they carry its id in ``changes``)."""
    result = await conn.execute(
        text(
            "SELECT actor, roles, source, request_id, resource, resource_id, action,"
            " client_id, changes FROM audit_events"
            " WHERE changes -> 'import_id' ->> 1 = :id ORDER BY seq"
        ),
        {"id": import_id},
    )
    return list(result)


# --- File framing ------------------------------------------------------------------


class TestFraming:
    ENCODED: Rows = [
        ["external_ref", "email", "full_name", "region"],
        ["enc-1", "otani@imp.test", "Ōtani Shōhei", "東京"],
        ["enc-2", "unal@imp.test", "Ünal Özgür", "İzmir"],
    ]

    @pytest.mark.parametrize("bom", [True, False], ids=["bom", "no-bom"])
    @pytest.mark.parametrize("newline", ["\r\n", "\n"], ids=["crlf", "lf"])
    async def test_utf8_with_or_without_bom_and_any_line_end(
        self, importer: Importer, connection: AsyncConnection, bom: bool, newline: str
    ) -> None:
        data = csv_bytes(self.ENCODED, bom=bom, newline=newline)
        assert data.startswith(b"\xef\xbb\xbf") == bom
        report = await importer("managers", data)
        assert (report["rows"], report["created"], report["rejected"]) == (2, 2, 0), report
        stored = (
            await connection.execute(
                text(
                    "SELECT external_ref, full_name, region FROM managers"
                    " WHERE external_ref LIKE 'enc-%' ORDER BY external_ref"
                )
            )
        ).all()
        # No BOM glued to the first header (external_ref was recognised), no stray CR.
        assert [tuple(r) for r in stored] == [
            ("enc-1", "Ōtani Shōhei", "東京"),
            ("enc-2", "Ünal Özgür", "İzmir"),
        ]

    @pytest.mark.parametrize("newline", ["\r\n", "\n"], ids=["crlf", "lf"])
    async def test_quoted_newlines_commas_and_quotes(
        self, importer: Importer, connection: AsyncConnection, org: Any, newline: str
    ) -> None:
        """A quoted cell may hold line breaks (LF inside a CRLF file, as in the CFPB
        data), commas and doubled quotes; a row is a record, not a physical line."""
        notes = 'First line\nsecond, with a comma\nand "quotes"'
        rows = [
            INTERACTIONS[0],
            ["q-1", "t-acme", "t-ann", "email", "inbound", "2024-03-01T08:00:00Z"]
            + ["", 'Re: "offer", v2', notes, ""],
            ["q-2", "t-acme", "t-ann", "email", "inbound", "2024-03-02T08:00:00Z"]
            + ["", "Two\nlines", "x\r\ny", ""],
            ["q-3", "t-acme", "t-ann", "fax", "inbound", "2024-03-03T08:00:00Z", "", "S", "", ""],
        ]
        data = csv_bytes(rows, newline=newline)
        assert data.count(newline.encode()) > len(rows)  # more lines than records
        report = await importer("interactions", data)
        assert (report["rows"], report["created"]) == (3, 2), report
        assert report["rejections"] == [
            {
                "row": 4,
                "external_ref": "q-3",
                "reason": "channel: 'fax' is not one of email, phone, video_call, meeting, "
                "presentation, screen_share, chat, event, other",
            }
        ]
        stored: dict[str, str] = dict(
            (
                await connection.execute(
                    text(
                        "SELECT external_ref, subject || '|' || notes FROM interactions"
                        " WHERE external_ref IN ('q-1', 'q-2')"
                    )
                )
            ).all()
        )
        assert stored == {"q-1": f'Re: "offer", v2|{notes}', "q-2": "Two\nlines|x\r\ny"}

    async def test_header_in_any_order_and_case_optional_columns_left_out(
        self, importer: Importer, connection: AsyncConnection
    ) -> None:
        rows = [
            [" Currency ", "COUNTRY", "Segment", "name", "External_Ref"],
            ["EUR", "DE", "small", "Ordnung GmbH", "ord-1"],
        ]
        report = await importer("clients", rows)
        assert report["created"] == 1, report
        stored = (
            await connection.execute(
                text(
                    "SELECT name, segment, country, currency, lifecycle_stage FROM clients"
                    " WHERE external_ref = 'ord-1'"
                )
            )
        ).one()
        assert tuple(stored) == ("Ordnung GmbH", "small", "DE", "EUR", "prospect")

    async def test_header_that_does_not_fit_refuses_the_file(
        self, importer: Importer, connection: AsyncConnection
    ) -> None:
        before = await count_rows(connection, "managers", "audit_events")
        rows = [["external_ref", "colour", "full_name"], ["x-1", "red", "X"]]
        with pytest.raises(Unprocessable) as caught:
            await importer("managers", rows)
        assert caught.value.detail == (
            "The header does not fit the format: unknown column(s) colour; missing required"
            " column(s) email; expected external_ref, email, full_name, role, reports_to_ref,"
            " time_zone, region, active."
        )
        assert await count_rows(connection, "managers", "audit_events") == before

    async def test_header_repeating_a_column_refuses_the_file(
        self, importer: Importer, connection: AsyncConnection
    ) -> None:
        """Refused, naming it and where it is (it used to be read from its first place and
        the other silently ignored)."""
        rows = [
            ["external_ref", "name", "name", "segment", "country", "currency"],
            ["rep-1", "First Name", "Second Name", "small", "GB", "GBP"],
        ]
        with pytest.raises(Unprocessable) as caught:
            await importer("clients", rows)
        assert caught.value.detail == (
            "The header does not fit the format: repeated column(s) name (positions 2, 3);"
            " expected external_ref, name, legal_name, industry, segment, lifecycle_stage,"
            " parent_ref, country, currency, time_zone, renewal_date, annual_value,"
            " annual_value_currency."
        )
        assert await count_rows(connection, "clients") == {"clients": 0}

    @pytest.mark.parametrize(
        ("data", "problem"),
        [
            (
                b"external_ref,email,full_name,\nx-1,x1@imp.test,X One,\n",
                "empty column name at position 4",
            ),
            (
                b"external_ref,,email,full_name, \r\nx-1,,x1@imp.test,X One,\r\n",
                "empty column names at positions 2, 5",
            ),
        ],
        ids=["trailing-comma", "two-empty"],
    )
    async def test_header_with_an_empty_column_name_refuses_the_file(
        self, importer: Importer, connection: AsyncConnection, data: bytes, problem: str
    ) -> None:
        """Even a trailing comma (the rows ending in one too): cells under no name would
        be dropped without a word."""
        with pytest.raises(Unprocessable) as caught:
            await importer("managers", data)
        assert caught.value.detail == (
            f"The header does not fit the format: {problem}; expected external_ref, email,"
            " full_name, role, reports_to_ref, time_zone, region, active."
        )
        assert await count_rows(connection, "managers") == {"managers": 0}

    @pytest.mark.parametrize(
        ("data", "message"),
        [
            (b"", "The file is empty."),
            (
                "external_ref,name,r\xe9gion\nx,Caf\xe9,EU\n".encode("latin-1"),
                "The header is not valid UTF-8 (byte 0xe9 at column 3); save the file as UTF-8.",
            ),
            (
                "external_ref,name\nx,Caf\xe9\n".encode("utf-16"),
                "The header is not valid UTF-8 (byte 0xff at column 1); save the file as UTF-8.",
            ),
            (
                "external_ref,name\nx,Caf\xe9\n".encode("utf-16-le"),
                "The header contains a NUL character; save the file as UTF-8.",
            ),
        ],
        ids=["empty", "latin-1-header", "utf-16", "utf-16-without-bom"],
    )
    async def test_unreadable_file_is_refused(
        self, importer: Importer, data: bytes, message: str
    ) -> None:
        with pytest.raises(Unprocessable) as caught:
            await importer("clients", data)
        assert caught.value.detail == message

    async def test_invalid_utf8_in_one_row_rejects_that_row_only(
        self, importer: Importer, connection: AsyncConnection
    ) -> None:
        """One latin-1 byte in row 5 of 10: that row is rejected with the byte and its
        column, the other nine (non-ASCII names after it too) go in."""
        head = CLIENT_HEAD[:5]
        lines = [",".join(head).encode()] + [
            f"u-{n},Ügyfél {n},small,HU,HUF".encode() for n in range(2, 12)
        ]
        lines[5 - 1] = b"u-5,Caf\xe9 Kft.,small,HU,HUF"
        report = await importer("clients", b"\n".join(lines) + b"\n")
        assert (report["rows"], report["created"], report["rejected"]) == (10, 9, 1), report
        assert report["rejections"] == [
            {
                "row": 5,
                "external_ref": "u-5",
                "reason": "row is not valid UTF-8 (byte 0xe9 at column 2, name)",
            }
        ]
        stored: dict[str, str] = dict(
            (
                await connection.execute(
                    text("SELECT external_ref, name FROM clients WHERE external_ref LIKE 'u-%'")
                )
            ).all()
        )
        assert stored == {f"u-{n}": f"Ügyfél {n}" for n in range(2, 12) if n != 5}

    @pytest.mark.parametrize("read_bytes", [1, 3, 64, 4096])
    async def test_invalid_utf8_late_in_a_long_file_rejects_that_row_only(
        self,
        importer: Importer,
        connection: AsyncConnection,
        monkeypatch: pytest.MonkeyPatch,
        read_bytes: int,
    ) -> None:
        """Read in chunks of any size (one byte: every CRLF, every UTF-8 sequence and the
        BOM split between two), the rows are the same; a bad byte after many clean chunks
        rejects its row only (it used to refuse the file, naming a wrong row), and the
        last row, with no line end, goes in."""
        monkeypatch.setattr(engine, "READ_BYTES", read_bytes)
        count = 3000 if read_bytes > 1 else 300  # one-byte reads are slow
        rows = [CLIENT_HEAD[:5]] + [
            [f"long-{n}", f"Client {n}", "small", "HU", "HUF"] for n in range(count)
        ]
        rows += [["long-q", 'Két\r\nsoros, 日本 "Kft."', "small", "JP", "JPY"]]
        data = csv_bytes(rows, bom=True, newline="\r\n")
        data += b"long-x,small,Caf\xe9,HU,HUF\r\nlong-y,Utolj\xc3\xa1ra,small,HU,HUF"
        report = await importer("clients", data)
        assert (report["rows"], report["created"], report["rejected"]) == (
            count + 3,
            count + 2,
            1,
        )
        assert report["rejections"] == [
            {
                "row": count + 3,
                "external_ref": "long-x",
                "reason": "row is not valid UTF-8 (byte 0xe9 at column 3, segment)",
            }
        ]
        stored: dict[str, str] = dict(
            (
                await connection.execute(
                    text(
                        "SELECT external_ref, name FROM clients"
                        " WHERE external_ref IN ('long-0', 'long-q', 'long-y')"
                    )
                )
            ).all()
        )
        assert stored == {
            "long-0": "Client 0",
            "long-q": 'Két\r\nsoros, 日本 "Kft."',
            "long-y": "Utoljára",
        }

    async def test_unknown_resource(self, importer: Importer) -> None:
        with pytest.raises(Unprocessable):
            await importer("invoices", [["external_ref"], ["x"]])


# --- The per-row report ----------------------------------------------------------


class Prefix(str):
    """An expected reason that only has to start with this text."""

    __slots__ = ()


@dataclass(frozen=True)
class Case:
    resource: str
    rows: Rows
    rejected: dict[int, str]
    created: int


CLIENT_HEAD = ["external_ref", "name", "segment", "country", "currency", "renewal_date"]
SALE_HEAD = list(SALES[0])
ASSIGN_HEAD = list(ASSIGNMENTS[0])
QUOTA_HEAD = list(QUOTAS[0])
COMPLAINT_HEAD = list(COMPLAINTS[0])
CASES: dict[str, Case] = {
    "bad e-mail": Case(
        "managers",
        [["external_ref", "email", "full_name"], ["n-1", "n1@imp.test", "N One"]]
        + [["n-2", "not-an-email", "N Two"]],
        {3: "email: 'not-an-email' is not an e-mail address"},
        1,
    ),
    "e-mail of another manager": Case(
        "managers",
        [["external_ref", "email", "full_name"], ["n-1", "ANN@imp.test", "N One"]],
        {2: "email ANN@imp.test is used by manager t-ann"},
        0,
    ),
    "unknown enum": Case(
        "clients",
        [CLIENT_HEAD, ["n-1", "Gold Ltd", "gold", "GB", "GBP", ""]]
        + [["n-2", "Fine Ltd", "small", "GB", "GBP", ""]],
        {2: "segment: 'gold' is not one of strategic, key, enterprise, mid_market, small"},
        1,
    ),
    "bad country": Case(
        "clients",
        [CLIENT_HEAD, ["n-1", "Bioholding", "small", "Philipines", "PHP", ""]],
        {2: "country: 'Philipines' is not an ISO 3166-1 alpha-2 country code"},
        0,
    ),
    "bad currency": Case(
        "clients",
        [CLIENT_HEAD, ["n-1", "Coin Ltd", "small", "GB", "XBT", ""]],
        {2: "currency: 'XBT' is not an ISO 4217 currency code"},
        0,
    ),
    "bad date": Case(
        "clients",
        [CLIENT_HEAD, ["n-1", "Leap Ltd", "small", "GB", "GBP", "2025-02-30"]],
        {2: "renewal_date: '2025-02-30' is not a date (YYYY-MM-DD)"},
        0,
    ),
    "bad instant": Case(
        "sales",
        [SALE_HEAD, ["n-1", "t-acme", "10.00", "HUF", "31/12/2024", "new", "", ""]],
        {2: "closed_at: '31/12/2024' is not a date or an RFC 3339 instant"},
        0,
    ),
    "instant without offset": Case(
        "sales",
        [SALE_HEAD, ["n-1", "t-acme", "10.00", "HUF", "2024-12-31T10:00:00", "new", "", ""]],
        {2: "closed_at: '2024-12-31T10:00:00' has no UTC offset"},
        0,
    ),
    "instant in the future": Case(
        "sales",
        [SALE_HEAD, ["n-1", "t-acme", "10.00", "HUF", "2999-01-01", "new", "", ""]],
        {2: "closed_at is in the future"},
        0,
    ),
    "missing required": Case(
        "clients",
        [CLIENT_HEAD, ["n-1", "  ", "small", "GB", "GBP", ""]]
        + [["", "No Ref", "small", "GB", "GBP", ""], ["n-3", "No Segment", "", "GB", "GBP", ""]],
        {2: "name is required", 3: "external_ref is required", 4: "segment is required"},
        0,
    ),
    "cells count mismatch": Case(
        "clients",
        [CLIENT_HEAD, ["n-1", "Short", "small"], ["n-2", "Long", "small", "GB", "GBP", "", "x"]]
        + [["n-3", "Right", "small", "GB", "GBP", ""]],
        {2: "has 3 cells, the header has 6", 3: "has 7 cells, the header has 6"},
        1,
    ),
    "duplicate external_ref in the file": Case(
        "clients",
        [CLIENT_HEAD, ["n-dup", "First", "small", "GB", "GBP", ""]]
        + [["n-dup", "Second", "small", "GB", "GBP", ""], ["n-dup", "Third", "small", "GB"]]
        + [["n-dup", "Fourth", "small", "GB", "GBP", ""]],
        {
            3: "external_ref n-dup repeats row 2",
            4: "has 4 cells, the header has 6",
            5: "external_ref n-dup repeats row 2",
        },
        1,
    ),
    "unknown client": Case(
        "assignments",
        [ASSIGN_HEAD, ["n-1", "ghost", "t-ann", "secondary", "2024-01-01", "", ""]],
        {2: "client_ref ghost: no client with that external_ref"},
        0,
    ),
    "unknown manager": Case(
        "quotas",
        [QUOTA_HEAD, ["n-1", "ghost", "sales_amount", "FY2024-Q2", "10.00", "EUR", "", ""]],
        {2: "manager_ref ghost: no manager with that external_ref"},
        0,
    ),
    "unknown credited manager": Case(
        "sales",
        [SALE_HEAD, ["n-1", "t-acme", "10.00", "HUF", "2024-02-01", "new", "", "ghost"]],
        {2: "credited_manager_ref ghost: no manager with that external_ref"},
        0,
    ),
    "unknown parent": Case(
        "clients",
        [CLIENT_HEAD + ["parent_ref"], ["n-1", "Child", "small", "GB", "GBP", "", "ghost"]],
        {2: "parent_ref ghost: no client with that external_ref"},
        0,
    ),
    "inactive manager": Case(
        "assignments",
        [ASSIGN_HEAD, ["n-1", "t-free", "t-old", "primary", "2024-01-01", "", ""]],
        {2: "manager t-old is not active"},
        0,
    ),
    "no responsible manager for a sale": Case(
        "sales",
        [SALE_HEAD, ["n-1", "t-free", "10.00", "GBP", "2024-02-01", "new", "", ""]],
        {2: Prefix("client t-free had no responsible manager at 2024-02-01")},
        0,
    ),
    "overlapping primary within the file": Case(
        "assignments",
        [ASSIGN_HEAD, ["n-1", "t-free", "t-ann", "primary", "2024-01-01", "2024-07-01", ""]]
        + [["n-2", "t-free", "t-bob", "primary", "2024-03-01", "", ""]]
        + [["n-3", "t-free", "t-bob", "secondary", "2024-03-01", "", ""]],
        {3: "overlaps the primary assignment of row 2"},
        2,
    ),
    "overlapping primary in the database": Case(
        "assignments",
        [ASSIGN_HEAD, ["n-1", "t-acme", "t-bob", "primary", "2025-01-01", "", ""]]
        + [["n-2", "t-acme", "t-bob", "secondary", "2025-01-01", "", ""]]
        + [["n-3", "t-usco", "t-ann", "primary", "2025-01-01", "", ""]],
        {2: "overlaps primary assignment t-acme-ann"},
        2,
    ),
    "quota overlapping one in the database": Case(
        "quotas",
        [QUOTA_HEAD, ["n-1", "t-ann", "sales_amount", "FY2024", "5000000.00", "HUF", "", ""]]
        + [["n-2", "t-ann", "sales_amount", "FY2024-Q2", "1000000.00", "HUF", "", ""]],
        {2: "overlaps quota t-q-ann"},
        1,
    ),
    "quota overlapping one in the file": Case(
        "quotas",
        [QUOTA_HEAD, ["n-1", "t-bob", "sales_amount", "FY2024-Q2", "500.00", "EUR", "", ""]]
        + [["n-2", "t-bob", "sales_amount", "2024-05", "100.00", "EUR", "", ""]]
        + [["n-3", "t-bob", "interaction_count", "2024-05", "", "", "5", ""]],
        {3: "overlaps the quota of row 2"},
        2,
    ),
    "interaction_count quota with an amount of 0": Case(
        "quotas",
        [QUOTA_HEAD, ["n-1", "t-bob", "interaction_count", "2024-05", "0", "", "5", ""]],
        {
            2: "interaction_count needs a positive target_count and no target_amount or "
            "target_currency"
        },
        0,
    ),
    "interaction_count quota with a currency": Case(
        "quotas",
        [QUOTA_HEAD, ["n-1", "t-bob", "interaction_count", "2024-05", "", "EUR", "5", ""]],
        {
            2: "interaction_count needs a positive target_count and no target_amount or "
            "target_currency"
        },
        0,
    ),
    "decimal comma": Case(
        "sales",
        [SALE_HEAD, ["n-1", "t-acme", "1,5", "HUF", "2024-04-02", "new", "", ""]]
        + [["n-2", "t-acme", "1,2,3,4", "HUF", "2024-04-02", "new", "", ""]],
        {
            2: "amount: '1,5' is not a decimal number",
            3: "amount: '1,2,3,4' is not a decimal number",
        },
        0,
    ),
    "lead whose row is rejected (and a chain on it)": Case(
        "managers",
        [["external_ref", "email", "full_name", "reports_to_ref"]]
        + [["n-1", "n1@imp.test", "N One", "n-2"], ["n-2", "ANN@imp.test", "N Two", ""]]
        + [["n-3", "n3@imp.test", "N Three", "n-1"], ["n-4", "n4@imp.test", "N Four", ""]],
        {
            3: "email ANN@imp.test is used by manager t-ann",
            2: "reports_to_ref n-2: its row 3 was rejected",
            4: "reports_to_ref n-1: its row 2 was rejected",
        },
        1,
    ),
    "complaint answered in the future": Case(
        "complaints",
        [
            COMPLAINT_HEAD,
            ["n-1", "t-acme", "Late", "", "billing", "high", "", "2024-01-01", "closed"]
            + ["2099-01-01", ""],
        ],
        {2: "responded_at is in the future"},
        0,
    ),
    "bad quota period": Case(
        "quotas",
        [QUOTA_HEAD, ["n-1", "t-bob", "sales_amount", "Q2-2024", "500.00", "EUR", "", ""]],
        {2: "'Q2-2024' is not a period: use FY2027, FY2027-Q1, FY2027-M01 or 2026-04"},
        0,
    ),
    "refund with a positive amount": Case(
        "sales",
        [SALE_HEAD, ["n-1", "t-usco", "10.00", "USD", "2024-03-05", "refund", "", "t-ann"]]
        + [["n-2", "t-usco", "-10.00", "USD", "2024-03-05", "refund", "", "t-ann"]],
        {2: "a refund's amount cannot be positive"},
        1,
    ),
    "money decimals beyond USD": Case(
        "sales",
        [SALE_HEAD, ["n-1", "t-usco", "10.001", "USD", "2024-03-05", "new", "", ""]],
        {2: "amount has more decimals than USD allows"},
        0,
    ),
    "money decimals beyond JPY": Case(
        "sales",
        [SALE_HEAD, ["n-1", "t-nihon", "100.5", "JPY", "2024-03-05", "new", "", ""]]
        + [["n-2", "t-nihon", "1,000", "JPY", "2024-03-05", "new", "", ""]],
        {2: "amount has more decimals than JPY allows"},
        1,
    ),
    "annual value decimals beyond the currency": Case(
        "clients",
        [CLIENT_HEAD + ["annual_value", "annual_value_currency"]]
        + [["n-1", "Fils Co", "small", "KW", "KWD", "", "10.1234", "KWD"]]
        + [["n-2", "Fils Co 2", "small", "KW", "KWD", "", "10.123", "KWD"]],
        {2: "annual_value has more decimals than its currency allows"},
        1,
    ),
    "row split by an unquoted line break": Case(
        "complaints",
        [list(COMPLAINTS[0]), ["n-1", "t-acme", "Noise", "", "product", "low", ""]]
        + [["2024-02-05", "closed", "", ""]],
        {2: "has 7 cells, the header has 11", 3: "has 4 cells, the header has 11"},
        0,
    ),
    "closed complaint needs responded_at": Case(
        "complaints",
        [list(COMPLAINTS[0])]
        + [["n-1", "t-acme", "Noise", "", "product", "low", "", "2024-02-05", "closed", "", ""]],
        {2: "a closed complaint needs responded_at"},
        0,
    ),
    "complaint responded before received": Case(
        "complaints",
        [
            COMPLAINTS[0],
            ["n-1", "t-acme", "Noise", "", "product", "low", "", "2024-02-05", "closed"]
            + ["2024-02-04", ""],
        ],
        {2: Prefix("responded_at 2024-02-04 00:00:00+00 is before received_at 2024-02-05")},
        0,
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
async def test_rejected_rows_are_reported_and_the_rest_imported(
    importer: Importer, connection: AsyncConnection, org: Any, case: Case
) -> None:
    before = await refs(connection, case.resource)
    report = await importer(case.resource, case.rows)
    got = reasons(report)
    assert got.keys() == case.rejected.keys(), report
    for row, expected in case.rejected.items():
        if isinstance(expected, Prefix):
            assert got[row].startswith(expected), (row, got[row])
        else:
            assert got[row] == expected, (row, got[row])
    assert report["created"] == case.created, report
    assert report["rows"] == len(case.rows) - 1
    assert report["rejected"] == len(case.rejected)
    # The rejected rows' refs are reported (when the row had one) and never written.
    for rejection in report["rejections"]:
        assert rejection["external_ref"] in (None, case.rows[rejection["row"] - 1][0] or None)
    after = await refs(connection, case.resource)
    assert len(after - before) == case.created
    written = {r[0] for n, r in enumerate(case.rows[1:], 2) if n not in case.rejected}
    assert after - before == written - before


async def test_one_bad_row_neither_aborts_the_file_nor_is_half_written(
    importer: Importer, connection: AsyncConnection, org: Any
) -> None:
    """Good rows around bad ones go in; the bad ones leave no row and no audit row."""
    before = await count_rows(connection, *TABLES)
    rows = [
        SALE_HEAD,
        ["m-1", "t-acme", "100.00", "HUF", "2024-04-01", "new", "", ""],
        ["m-2", "t-acme", "100.001", "HUF", "2024-04-01", "new", "", ""],
        ["m-3", "ghost", "100.00", "HUF", "2024-04-01", "new", "", ""],
        ["m-4", "t-usco", "100.00", "USD", "2024-04-01", "refund", "", ""],
        ["m-5", "t-usco", "-100.00", "USD", "2024-04-01", "refund", "", ""],
        ["m-6", "t-free", "100.00", "GBP", "2024-04-01", "new", "", ""],
        ["m-7", "t-nihon", "5000", "JPY", "2024-04-01", "upsell", "", "t-ann"],
    ]
    report = await importer("sales", rows)
    assert sorted(reasons(report)) == [3, 4, 5, 7]
    assert report["created"] == 3
    after = await count_rows(connection, *TABLES)
    assert after == {**before, "sales": before["sales"] + 3}
    assert await refs(connection, "sales") >= {"m-1", "m-5", "m-7"}
    assert not await refs(connection, "sales") & {"m-2", "m-3", "m-4", "m-6"}
    audit = await import_audit(connection, importer.last_id)
    assert len(audit) == 3
    credited = (
        await connection.execute(
            text(
                "SELECT s.external_ref, m.external_ref FROM sales s"
                " JOIN managers m ON m.id = s.credited_manager_id"
                " WHERE s.external_ref IN ('m-1', 'm-5', 'm-7')"
            )
        )
    ).all()
    # Default: the primary at closed_at (t-acme: Ann, t-usco: Bob); else the given one.
    assert dict(credited) == {"m-1": "t-ann", "m-5": "t-bob", "m-7": "t-ann"}


async def test_a_row_the_database_refuses_is_not_half_written(
    importer: Importer, connection: AsyncConnection, org: Any
) -> None:
    """t-ann reports to t-lead, so t-lead reporting to t-ann is a cycle the database
    refuses (its trigger) and no check foresaw: the row is rejected (bisection) and must
    leave the stored manager as it was, name included."""
    rows = [
        ["external_ref", "email", "full_name", "reports_to_ref"],
        ["t-lead", "lead@imp.test", "Lea Lead the Second", "t-ann"],
        ["c-1", "c1@imp.test", "Cee One", "t-lead"],
    ]
    report = await importer("managers", rows, check=False)
    assert list(reasons(report)) == [2], report
    assert "cycle" in reasons(report)[2]
    stored = (
        await connection.execute(
            text(
                "SELECT m.full_name, m.version, m.reports_to_id FROM managers m"
                " WHERE m.external_ref = 't-lead'"
            )
        )
    ).one()
    assert tuple(stored) == ("Lea Lead", 1, None)
    assert (report["created"], report["updated"], report["unchanged"]) == (1, 0, 0), report
    assert_consistent(report)


async def test_a_cycle_within_the_file_leaves_no_rejected_row_behind(
    importer: Importer, connection: AsyncConnection
) -> None:
    """Two new managers naming each other as lead: the database refuses the second
    lead link; whatever row is rejected must not be in the table, and the counts add
    up (none of them negative)."""
    rows = [
        ["external_ref", "email", "full_name", "reports_to_ref"],
        ["cy-a", "a@imp.test", "Ay", "cy-b"],
        ["cy-b", "b@imp.test", "Bee", "cy-a"],
        ["cy-c", "c@imp.test", "Cee", ""],
    ]
    report = await importer("managers", rows, check=False)
    rejected = {r["external_ref"] for r in report["rejections"]}
    assert rejected, report
    assert all("cycle" in r["reason"] for r in report["rejections"]), report
    stored = await refs(connection, "managers")
    assert "cy-c" in stored
    assert not stored & rejected, f"rejected rows {rejected} were written anyway"
    assert_consistent(report)


@pytest.mark.parametrize(
    ("resource", "rows"),
    [
        (
            "assignments",
            [
                ASSIGN_HEAD,
                ["n-1", "t-free", "t-ann", "primary", "2024-01-01", "2024-07-01", ""],
                ["n-2", "t-free", "t-bob", "primary", "2024-03-01", "", ""],
                ["n-3", "t-free", "t-bob", "primary", "2024-07-01", "", ""],
            ],
        ),
        (
            "quotas",
            [
                QUOTA_HEAD,
                ["n-1", "t-bob", "sales_amount", "FY2024-Q2", "500.00", "EUR", "", ""],
                ["n-2", "t-bob", "sales_amount", "FY2024", "100.00", "EUR", "", ""],
                ["n-3", "t-bob", "sales_amount", "FY2024-Q3", "500.00", "EUR", "", ""],
            ],
        ),
    ],
    ids=["assignments", "quotas"],
)
async def test_a_rejected_row_does_not_block_later_rows(
    importer: Importer, connection: AsyncConnection, org: Any, resource: str, rows: Rows
) -> None:
    """Row 3 overlaps row 2 and is rejected; row 4 overlaps only row 3, which is not
    written, and fits next to row 2: it goes in."""
    report = await importer(resource, rows)
    assert list(reasons(report)) == [3], reasons(report)
    assert report["created"] == 2, report
    assert {"n-1", "n-3"} <= await refs(connection, resource)


async def test_nul_character_in_a_cell_rejects_that_row_only(
    importer: Importer, connection: AsyncConnection
) -> None:
    """PostgreSQL text cannot hold NUL: that row is rejected, the file still goes in."""
    rows = [["external_ref", "email", "full_name"], ["z-1", "z1@imp.test", "Bad\x00Name"]]
    rows += [["z-2", "z2@imp.test", "Good Name"]]
    report = await importer("managers", rows)
    assert report["rejections"] == [
        {"row": 2, "external_ref": "z-1", "reason": "contains a NUL character"}
    ]
    assert report["created"] == 1
    assert await refs(connection, "managers") == {"z-2"}


async def test_a_loader_can_say_why_a_required_cell_is_blank(
    importer: Importer, connection: AsyncConnection, org: Any
) -> None:
    """``blank_reasons`` (what a data-set loader knows of the file it wrote) replaces
    "<column> is required" for that column only."""
    rows = [
        INTERACTIONS[0],
        ["b-1", "", "t-ann", "meeting", "outbound", "2024-03-01", "", "Engaged", "", ""],
        ["b-2", "t-acme", "t-ann", "meeting", "outbound", "2024-03-01", "", "", "", ""],
        ["b-3", "t-acme", "t-ann", "meeting", "outbound", "2024-03-01", "", "Engaged", "", ""],
    ]
    why = {"client_ref": "the deal has a blank account in sales_pipeline.csv"}
    report = await importer("interactions", rows, blank_reasons=why)
    assert report["rejections"] == [
        {
            "row": 2,
            "external_ref": "b-1",
            "reason": "the deal has a blank account in sales_pipeline.csv",
        },
        {"row": 3, "external_ref": "b-2", "reason": "subject is required"},
    ]
    assert report["created"] == 1
    assert "b-3" in await refs(connection, "interactions")


async def test_cell_beyond_the_csv_field_limit_rejects_that_row_only(
    importer: Importer, connection: AsyncConnection, org: Any
) -> None:
    """A 200,000-character note (the limit is 20,000) is a row problem, not a crash."""
    rows = [
        INTERACTIONS[0],
        ["big-1", "t-acme", "t-ann", "email", "inbound", "2024-03-01", "", "S", "n" * 200_000, ""],
        ["big-2", "t-acme", "t-ann", "email", "inbound", "2024-03-01", "", "S", "short", ""],
    ]
    report = await importer("interactions", rows)
    assert reasons(report) == {2: "notes: longer than 20000 characters"}, report
    assert report["created"] == 1
    assert "big-2" in await refs(connection, "interactions")


# --- Re-imports, dry runs, audit -------------------------------------------------


async def test_reimporting_the_same_files_changes_nothing(
    importer: Importer, connection: AsyncConnection, org: Any
) -> None:
    versions_before = {
        table: (await connection.execute(text(f"SELECT sum(version) FROM {table}"))).scalar()
        for table in TABLES
    }
    for resource, rows in ORG.items():
        report = await importer(resource, rows)
        assert (report["created"], report["updated"], report["rejected"]) == (0, 0, 0), report
        assert report["unchanged"] == len(rows) - 1
        assert await import_audit(connection, importer.last_id) == []
    for table in TABLES:
        total = (await connection.execute(text(f"SELECT sum(version) FROM {table}"))).scalar()
        assert total == versions_before[table], table


async def test_changing_one_cell_updates_that_record_only(
    importer: Importer, connection: AsyncConnection, org: Any
) -> None:
    changed = [list(row) for row in CLIENTS]
    changed[2][1] = "日本商事株式会社"
    report = await importer("clients", changed)
    assert (report["created"], report["updated"], report["unchanged"]) == (0, 1, 3), report
    stored = (
        await connection.execute(
            text("SELECT name, version, updated_by FROM clients WHERE external_ref = 't-nihon'")
        )
    ).one()
    assert tuple(stored) == ("日本商事株式会社", 2, ACTOR)
    audit = await import_audit(connection, importer.last_id)
    assert [(a.resource, a.action, a.changes["import_row"]) for a in audit] == [
        ("clients", "update", [None, 3])
    ]


async def test_changing_a_lead_counts_as_an_update(
    importer: Importer, connection: AsyncConnection, org: Any
) -> None:
    changed = [list(row) for row in MANAGERS]
    changed[3][4] = "t-ann"  # t-bob now reports to t-ann
    report = await importer("managers", changed)
    assert (report["created"], report["updated"], report["unchanged"]) == (0, 1, 3), report
    lead = (
        await connection.execute(
            text(
                "SELECT l.external_ref FROM managers m JOIN managers l ON l.id = m.reports_to_id"
                " WHERE m.external_ref = 't-bob'"
            )
        )
    ).scalar_one()
    assert lead == "t-ann"


async def test_dry_run_reports_the_same_counts_and_writes_nothing(
    importer: Importer, connection: AsyncConnection, org: Any
) -> None:
    rows = [list(row) for row in CLIENTS]
    rows[1][1] = "Acme Zrt."  # updated
    rows += [
        ["t-new", "New Co", "small", "active", "DE", "EUR", "", "", "", "t-acme"],  # created
        ["t-bad", "Bad Co", "small", "active", "XX", "EUR", "", "", "", ""],  # rejected
    ]
    before = await count_rows(connection, *TABLES, "audit_events")
    names_before = (await connection.execute(text("SELECT name FROM clients ORDER BY id"))).all()

    dry = await importer("clients", rows, dry_run=True)
    assert dry["dry_run"] is True
    assert await count_rows(connection, *TABLES, "audit_events") == before
    assert (await connection.execute(text("SELECT name FROM clients ORDER BY id"))).all() == (
        names_before
    )
    assert await import_audit(connection, importer.last_id) == []

    real = await importer("clients", rows)
    assert real["dry_run"] is False
    keys = ("rows", "created", "updated", "unchanged", "rejected", "rejections")
    assert {k: dry[k] for k in keys} == {k: real[k] for k in keys}
    assert (real["created"], real["updated"], real["unchanged"], real["rejected"]) == (1, 1, 3, 1)
    assert (await count_rows(connection, "clients"))["clients"] == before["clients"] + 1


async def test_audit_rows_with_source_import(
    importer: Importer, connection: AsyncConnection
) -> None:
    await importer("managers", MANAGERS)
    report = await importer("clients", CLIENTS)
    audit = await import_audit(connection, importer.last_id)
    ids: dict[str, uuid.UUID] = dict(
        (await connection.execute(text("SELECT external_ref, id FROM clients"))).all()
    )
    assert len(audit) == report["created"] == 4
    for row_no, (event, row) in enumerate(zip(audit, CLIENTS[1:], strict=True), start=2):
        assert event.source == "import"
        assert (event.actor, list(event.roles), event.request_id) == (ACTOR, ["admin"], REQUEST_ID)
        assert (event.resource, event.action) == ("clients", "create")
        assert event.resource_id == str(ids[row[0]])
        assert event.client_id == ids[row[0]]
        assert event.changes["import_row"] == [None, row_no]
        assert event.changes["import_id"] == [None, importer.last_id]
        # The values it was created with, as the API's create rows carry them.
        assert event.changes["external_ref"] == [None, row[0]]
        assert event.changes["name"] == [None, row[1]]


async def test_audit_rows_of_created_sales_carry_their_values(
    importer: Importer, connection: AsyncConnection, org: Any
) -> None:
    ids: dict[str, uuid.UUID] = dict(
        (await connection.execute(text("SELECT external_ref, id FROM sales"))).all()
    )
    clients: dict[str, uuid.UUID] = dict(
        (await connection.execute(text("SELECT external_ref, id FROM clients"))).all()
    )
    audit = (
        await connection.execute(
            text(
                "SELECT resource_id, changes FROM audit_events WHERE resource = 'sales'"
                " AND source = 'import' AND action = 'create'"
            )
        )
    ).all()
    changes = {row.resource_id: row.changes for row in audit}
    first = changes[str(ids["t-s1"])]
    assert first["client_id"] == [None, str(clients["t-acme"])]
    assert first["amount"] == [None, "250000.00"]  # as written in the file
    assert first["currency"] == [None, "HUF"]
    assert first["kind"] == [None, "new"]
    assert first["product"] == [None, "Widgets"]
    closed_at = (
        await connection.execute(text("SELECT closed_at FROM sales WHERE external_ref = 't-s1'"))
    ).scalar_one()
    assert datetime.fromisoformat(first["closed_at"][1]) == closed_at
    assert changes[str(ids["t-s2"])]["product"] == [None, None]


@pytest.mark.parametrize("resource", CLIENT_OWNED)
async def test_audit_rows_of_client_records_name_their_client(
    importer: Importer, connection: AsyncConnection, org: Any, resource: str
) -> None:
    """Imported interactions, complaints, sales and assignments show in their client's
    history (``GET /v1/clients/{id}/history`` reads ``audit_events.client_id``), like
    the same records written through the API."""
    result = await connection.execute(
        text(
            f"SELECT r.external_ref, r.client_id, a.client_id AS audited_client_id"
            f" FROM {resource} r JOIN audit_events a ON a.resource_id = r.id::text"
            f" AND a.resource = '{resource}' AND a.source = 'import' AND a.action = 'create'"
        )
    )
    rows = result.all()
    assert len(rows) == len(ORG[resource]) - 1
    wrong = {
        r.external_ref: r.audited_client_id for r in rows if r.audited_client_id != r.client_id
    }
    assert not wrong, f"audit rows with the wrong client_id: {wrong}"


async def test_complaint_history_and_credited_defaults(
    importer: Importer, connection: AsyncConnection, org: Any
) -> None:
    """An imported complaint gets its status history (closed: the legal path at
    responded_at); its assignee is the client's primary at received_at."""
    history = (
        await connection.execute(
            text(
                "SELECT c.external_ref, t.from_status, t.to_status, t.at::date FROM"
                " complaint_transitions t JOIN complaints c ON c.id = t.complaint_id"
                " ORDER BY c.external_ref, t.seq"
            )
        )
    ).all()
    assert [tuple(h)[:3] for h in history] == [
        ("t-c1", None, "open"),
        ("t-c2", None, "open"),
        ("t-c2", "open", "acknowledged"),
        ("t-c2", "acknowledged", "in_progress"),
        ("t-c2", "in_progress", "resolved"),
        ("t-c2", "resolved", "closed"),
    ]
    assignees: dict[str, str | None] = dict(
        (
            await connection.execute(
                text(
                    "SELECT c.external_ref, m.external_ref FROM complaints c"
                    " LEFT JOIN managers m ON m.id = c.assignee_id"
                )
            )
        ).all()
    )
    assert assignees == {"t-c1": "t-ann", "t-c2": "t-bob"}


# --- Updates: before → after, blank links, counts, ids --------------------------------


async def ids_by_ref(conn: AsyncConnection, table: str) -> dict[str, uuid.UUID]:
    result = await conn.execute(text(f"SELECT external_ref, id FROM {table}"))
    return {ref: id_ for ref, id_ in result.all()}


async def test_update_audit_records_before_and_after_like_the_api(
    importer: Importer, connection: AsyncConnection, org: Any, client: AsyncClient
) -> None:
    """An imported update's audit row holds ``{column: [before, after]}`` of the changed
    columns only, in the API's shape (ids and dates as strings, money as a string)."""
    ids = await ids_by_ref(connection, "clients")
    response = await client.patch(
        f"/v1/clients/{ids['t-free']}",
        json={"name": "Free Agent plc", "parent_id": str(ids["t-acme"])},
    )
    assert response.status_code == 200, response.text
    api = (
        await connection.execute(
            text(
                "SELECT changes FROM audit_events WHERE resource = 'clients'"
                " AND resource_id = :id AND action = 'update' ORDER BY seq DESC LIMIT 1"
            ),
            {"id": str(ids["t-free"])},
        )
    ).scalar_one()
    assert api["name"] == ["Free Agent Ltd", "Free Agent plc"]
    assert api["parent_id"] == [None, str(ids["t-acme"])]

    rows = [list(row) for row in CLIENTS]
    rows[1][6] = "1300000"  # t-acme: annual_value
    rows[2][1], rows[2][8], rows[2][9] = "日本商事株式会社", "2026-01-31", "t-acme"  # t-nihon
    rows[4][1], rows[4][9] = "Free Agent plc", "t-acme"  # t-free: as the API left it
    report = await importer("clients", rows)
    assert (report["created"], report["updated"], report["unchanged"]) == (0, 2, 2), report
    audit = {a.resource_id: a for a in await import_audit(connection, importer.last_id)}
    assert set(audit) == {str(ids["t-acme"]), str(ids["t-nihon"])}
    mark = {"import_id": [None, importer.last_id]}
    assert audit[str(ids["t-acme"])].changes == {
        **mark,
        "import_row": [None, 2],
        # Money as DESIGN §3 renders it: the currency's minor-unit digits (HUF 2).
        "annual_value_amount": ["1250000.50", "1300000.00"],
    }
    assert audit[str(ids["t-nihon"])].changes == {
        **mark,
        "import_row": [None, 3],
        "name": ["日本商事", "日本商事株式会社"],
        "renewal_date": [None, "2026-01-31"],
        "parent_id": [None, str(ids["t-acme"])],
    }
    assert {a.action for a in audit.values()} == {"update"}


@pytest.mark.parametrize(
    ("resource", "ref", "link", "column"),
    [
        ("managers", "t-ann", "reports_to_ref", "reports_to_id"),
        ("clients", "t-usco", "parent_ref", "parent_id"),
    ],
)
async def test_a_blank_link_on_reimport_clears_it(
    importer: Importer,
    connection: AsyncConnection,
    org: Any,
    resource: str,
    ref: str,
    link: str,
    column: str,
) -> None:
    rows = [list(row) for row in ORG[resource]]
    row = next(r for r in rows if r[0] == ref)
    query = text(f"SELECT {column} FROM {resource} WHERE external_ref = :ref")
    linked = (await connection.execute(query, {"ref": ref})).scalar_one()
    assert linked is not None
    assert row[rows[0].index(link)]
    row[rows[0].index(link)] = ""
    report = await importer(resource, rows)
    assert (report["created"], report["updated"], report["unchanged"]) == (0, 1, len(rows) - 2)
    assert (await connection.execute(query, {"ref": ref})).scalar_one() is None
    audit = await import_audit(connection, importer.last_id)
    assert [(a.action, a.changes[column]) for a in audit] == [("update", [str(linked), None])]
    again = await importer(resource, rows)
    assert (again["updated"], again["unchanged"]) == (0, len(rows) - 1), again


async def test_counts_come_from_sql_and_unchanged_rows_write_nothing(
    importer: Importer, connection: AsyncConnection, org: Any
) -> None:
    """A file with new, changed, unchanged and bad rows: each counted once; only the new
    and changed rows get a version bump or an audit row."""
    rows = [list(row) for row in SALES]
    rows[1][2] = "260000.00"  # t-s1 changed
    rows += [
        ["t-s4", "t-acme", "10.00", "HUF", "2024-04-02", "new", "", ""],  # new
        ["t-s5", "ghost", "10.00", "HUF", "2024-04-02", "new", "", ""],  # rejected
    ]
    versions: dict[str, int] = dict(
        (await connection.execute(text("SELECT external_ref, version FROM sales"))).all()
    )
    report = await importer("sales", rows)
    counts = [report[k] for k in ("rows", "created", "updated", "unchanged", "rejected")]
    assert counts == [5, 1, 1, 2, 1], report
    after: dict[str, int] = dict(
        (await connection.execute(text("SELECT external_ref, version FROM sales"))).all()
    )
    assert after == {**versions, "t-s1": versions["t-s1"] + 1, "t-s4": 1}
    audit = sorted(await import_audit(connection, importer.last_id), key=lambda a: a.action)
    assert [(a.action, a.changes["import_row"][1]) for a in audit] == [("create", 5), ("update", 2)]
    assert audit[1].changes["amount"] == ["250000.00", "260000.00"]


async def test_new_ids_are_time_ordered_in_file_order(
    importer: Importer, connection: AsyncConnection, org: Any
) -> None:
    """New rows get UUIDs in the version 7 layout, ordered as the rows of the file (so
    the indexes on ids grow at their right edge), whatever the other columns say."""
    rows = [SALE_HEAD] + [
        [f"o-{n}", "t-acme", "1.00", "HUF", f"2024-04-0{n}", "new", "", ""] for n in (3, 1, 2)
    ]
    await importer("sales", rows)
    await importer(
        "managers",
        [["external_ref", "email", "full_name"]]
        + [[f"o-{n}", f"o{n}@imp.test", f"O {n}"] for n in (3, 1, 2)],
    )
    for table in ("sales", "managers"):
        stored = (
            await connection.execute(
                text(
                    f"SELECT external_ref, id FROM {table}"
                    " WHERE external_ref LIKE 'o-%' ORDER BY id"
                )
            )
        ).all()
        assert [r.external_ref for r in stored] == ["o-3", "o-1", "o-2"], table
        assert {r.id.version for r in stored} == {7}


async def test_a_lead_later_in_the_file_is_linked_by_the_same_write(
    importer: Importer, connection: AsyncConnection
) -> None:
    rows = [
        ["external_ref", "email", "full_name", "reports_to_ref"],
        ["y-a", "ya@imp.test", "Ya", "y-b"],
        ["y-b", "yb@imp.test", "Yb", ""],
    ]
    report = await importer("managers", rows)
    assert (report["created"], report["updated"], report["rejected"]) == (2, 0, 0), report
    lead = (
        await connection.execute(
            text(
                "SELECT l.external_ref FROM managers m JOIN managers l ON l.id = m.reports_to_id"
                " WHERE m.external_ref = 'y-a'"
            )
        )
    ).scalar_one()
    assert lead == "y-b"
    audit = await import_audit(connection, importer.last_id)
    assert [a.action for a in audit] == ["create", "create"]


async def test_a_link_to_a_row_of_a_later_half_is_set_after_a_split(
    importer: Importer, connection: AsyncConnection
) -> None:
    """Row 3 breaks a constraint no check foresees (added for this test), so the file is
    written in halves; row 2 names a lead that is new in row 4, of a later half: the
    final pass links it. Both rows count as created; the link has its own audit row."""
    await connection.execute(
        text("ALTER TABLE managers ADD CONSTRAINT ck_managers_test CHECK (full_name <> 'Nope')")
    )
    rows = [
        ["external_ref", "email", "full_name", "reports_to_ref"],
        ["x-a", "xa@imp.test", "Xa", "x-c"],
        ["x-b", "xb@imp.test", "Nope", ""],
        ["x-c", "xc@imp.test", "Xc", ""],
    ]
    report = await importer("managers", rows)
    assert list(reasons(report)) == [3], report
    assert (report["created"], report["updated"], report["unchanged"]) == (2, 0, 0), report
    lead = (
        await connection.execute(
            text(
                "SELECT l.external_ref FROM managers m JOIN managers l ON l.id = m.reports_to_id"
                " WHERE m.external_ref = 'x-a'"
            )
        )
    ).scalar_one()
    assert lead == "x-c"
    audit = await import_audit(connection, importer.last_id)
    assert [(a.action, a.changes["import_row"][1]) for a in audit] == [
        ("create", 2),
        ("create", 4),
        ("update", 2),
    ]
    assert audit[2].changes["reports_to_id"] == [None, audit[1].resource_id]


@pytest.mark.parametrize(
    ("cell", "stored"),
    [
        ("1,000.50", "1000.5000"),
        ("1e3", "1000.0000"),
        ("١٢٣", "123.0000"),  # Arabic-Indic digits
        ("-0", "0.0000"),
    ],
)
async def test_amounts_in_other_spellings_are_stored_as_meant(
    importer: Importer, connection: AsyncConnection, org: Any, cell: str, stored: str
) -> None:
    rows = [SALE_HEAD, ["sp-1", "t-acme", cell, "HUF", "2024-04-02", "new", "", ""]]
    report = await importer("sales", rows)
    assert report["created"] == 1, report
    amount = (
        await connection.execute(text("SELECT amount::text FROM sales WHERE external_ref = 'sp-1'"))
    ).scalar_one()
    assert amount == stored


@pytest.mark.parametrize(
    ("cell", "stored"),
    [
        ("2024-03-01T10:00:00.25+09:00", "2024-03-01 01:00:00.25+00"),
        ("2024-03-01T10:00:00+20:00", "2024-02-29 14:00:00+00"),  # beyond PostgreSQL's ±15h
        ("2024-03-01 10:00:00Z", "2024-03-01 10:00:00+00"),
        ("2024-03-01t10:00:00-03:30", "2024-03-01 13:30:00+00"),
        ("2024-03-01", "2024-03-01 00:00:00+00"),  # 00:00 in the organisation's zone (UTC)
    ],
)
async def test_instants_in_other_spellings_are_stored_as_meant(
    importer: Importer, connection: AsyncConnection, org: Any, cell: str, stored: str
) -> None:
    rows = [SALE_HEAD, ["sp-1", "t-acme", "1.00", "HUF", cell, "new", "", ""]]
    report = await importer("sales", rows)
    assert report["created"] == 1, report
    closed = (
        await connection.execute(
            text(
                "SELECT (closed_at AT TIME ZONE 'UTC')::text || '+00' FROM sales"
                " WHERE external_ref = 'sp-1'"
            )
        )
    ).scalar_one()
    assert closed == stored


# --- POST /v1/imports --------------------------------------------------------------


async def wait_for(http: AsyncClient, location: str) -> dict[str, Any]:
    """Poll the job until it has finished (succeeded or failed), at most JOB_TIMEOUT_S."""
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while True:
        response = await http.get(location)
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()
        if job["status"] in ("succeeded", "failed"):
            return job
        if time.monotonic() > deadline:
            pytest.fail(f"import job still {job['status']} after {JOB_TIMEOUT_S} s")
        await asyncio.sleep(0.05)


async def upload(
    http: AsyncClient, resource: str, data: bytes, *, dry_run: bool | None = None
) -> Any:
    form = {"resource": resource}
    if dry_run is not None:
        form["dry_run"] = "true" if dry_run else "false"
    return await http.post(
        "/v1/imports", data=form, files={"file": ("upload.csv", data, "text/csv")}
    )


class TestEndpoint:
    FILE: Rows = [
        ["external_ref", "email", "full_name"],
        ["h-1", "h1@imp.test", "Hanna Http"],
        ["h-2", "h2@imp.test", "Hugo Http"],
        ["h-3", "broken", "Bad Row"],
    ]

    async def test_upload_is_accepted_and_the_job_reports(self, live_client: AsyncClient) -> None:
        response = await upload(live_client, "managers", csv_bytes(self.FILE, bom=True))
        assert response.status_code == 202, response.text
        job = response.json()
        assert response.headers["Location"] == f"/v1/imports/{job['id']}"
        assert (job["resource"], job["filename"], job["dry_run"]) == (
            "managers",
            "upload.csv",
            False,
        )
        assert job["status"] in ("queued", "running", "succeeded")
        done = await wait_for(live_client, response.headers["Location"])
        assert done["status"] == "succeeded", done
        assert done["error"] is None
        assert done["finished_at"] is not None
        report = done["report"]
        assert (report["rows"], report["created"], report["rejected"]) == (3, 2, 1), report
        assert report["rejections"] == [
            {"row": 4, "external_ref": "h-3", "reason": "email: 'broken' is not an e-mail address"}
        ]
        listed = await live_client.get("/v1/managers", params={"q": "Http"})
        assert sorted(m["external_ref"] for m in listed.json()["items"]) == ["h-1", "h-2"]

        again = await upload(live_client, "managers", csv_bytes(self.FILE))
        report = (await wait_for(live_client, again.headers["Location"]))["report"]
        assert (report["created"], report["updated"], report["unchanged"]) == (0, 0, 2)

    async def test_dry_run_upload_writes_nothing(self, live_client: AsyncClient) -> None:
        response = await upload(live_client, "managers", csv_bytes(self.FILE), dry_run=True)
        assert response.status_code == 202, response.text
        assert response.json()["dry_run"] is True
        done = await wait_for(live_client, response.headers["Location"])
        assert done["status"] == "succeeded", done
        assert done["report"]["dry_run"] is True
        assert (done["report"]["created"], done["report"]["rejected"]) == (2, 1)
        listed = await live_client.get("/v1/managers", params={"q": "Http"})
        assert listed.json()["items"] == []

    async def test_header_that_does_not_fit_fails_the_job(self, live_client: AsyncClient) -> None:
        data = csv_bytes([["ref", "email", "full_name"], ["x", "x@imp.test", "X"]])
        response = await upload(live_client, "managers", data)
        assert response.status_code == 202, response.text
        done = await wait_for(live_client, response.headers["Location"])
        assert done["status"] == "failed"
        assert done["report"] is None
        assert done["error"] == (
            "The header does not fit the format: unknown column(s) ref; missing required"
            " column(s) external_ref; expected external_ref, email, full_name, role,"
            " reports_to_ref, time_zone, region, active."
        )

    async def test_audit_rows_carry_the_request_id(
        self, live_client: AsyncClient, engine: Any
    ) -> None:
        """The import's audit rows name the request that uploaded the file (the id the
        response returns in X-Request-ID), like every API write."""
        response = await upload(live_client, "managers", csv_bytes(self.FILE[:2]))
        assert response.status_code == 202, response.text
        request_id = response.headers["X-Request-ID"]
        job = response.json()
        done = await wait_for(live_client, response.headers["Location"])
        assert done["status"] == "succeeded", done
        async with engine.connect() as conn:
            audit = await import_audit(conn, job["id"])
        assert [(a.source, a.actor, list(a.roles)) for a in audit] == [
            ("import", "test-admin", ["admin"])
        ]
        assert audit[0].request_id == request_id

    def test_the_documented_resources_are_the_importers(self) -> None:
        assert [r.value for r in ImportResource] == list(RESOURCES)

    @pytest.mark.parametrize("value", ["1", "yes", "off"])
    async def test_dry_run_is_true_or_false(self, client: AsyncClient, value: str) -> None:
        """Found by Schemathesis: lax parsing read ``1``/``yes``/``off`` as booleans."""
        response = await client.post(
            "/v1/imports",
            data={"resource": "managers", "dry_run": value},
            files={"file": ("upload.csv", csv_bytes(self.FILE), "text/csv")},
        )
        assert_invalid(response, "body.dry_run")

    async def test_bad_resource_is_a_422(self, client: AsyncClient) -> None:
        response = await upload(client, "invoices", csv_bytes(self.FILE))
        body = assert_invalid(response, "body.resource")
        assert "managers" in body["errors"][0]["message"]

    async def test_missing_file_is_a_422(self, client: AsyncClient) -> None:
        response = await client.post("/v1/imports", data={"resource": "managers"})
        assert_problem(response, 422)

    async def test_unknown_job_is_a_404(self, client: AsyncClient) -> None:
        assert_problem(await client.get(f"/v1/imports/{uuid.uuid4()}"), 404)

    @pytest.mark.parametrize(
        "role", [Role.sales_manager, Role.account_manager, Role.viewer, Role.service]
    )
    async def test_non_admin_is_a_403(
        self, app: FastAPI, settings: Settings, connection: AsyncConnection, role: Role
    ) -> None:
        token = make_token(settings, role, subject=str(uuid.uuid4()))
        async with non_admin(app, token) as http:
            response = await upload(http, "managers", csv_bytes(self.FILE))
            assert_problem(response, 403)
            assert_problem(await http.get(f"/v1/imports/{uuid.uuid4()}"), 403)
        assert await count_rows(connection, "imports", "managers") == {
            "imports": 0,
            "managers": 0,
        }


def non_admin(app: FastAPI, token: str) -> AsyncClient:
    return AsyncClient(
        transport=ASGITransport(app=app),
        base_url="http://test",
        headers={"Authorization": f"Bearer {token}"},
    )


async def test_many_rows_the_database_refuses_end_in_a_report_not_a_crash(
    importer: Importer, connection: AsyncConnection
) -> None:
    """A constraint no check foresees (added for this test) refuses 300 of 310 rows: the
    first MAX_REFUSED are named with the constraint, the rest reported as not written;
    nothing of a refused row stays. (Thousands of savepoints used to exhaust the lock
    table and fail the whole import with a traceback.)"""
    await connection.execute(
        text("ALTER TABLE managers ADD CONSTRAINT ck_managers_test CHECK (full_name <> 'Nope')")
    )
    rows = [["external_ref", "email", "full_name"]] + [
        [f"r-{i}", f"r{i}@imp.test", "Fine" if i % 31 == 0 else "Nope"] for i in range(310)
    ]
    report = await importer("managers", rows)
    why = reasons(report)
    named = [r for r, reason in why.items() if reason.endswith("(constraint ck_managers_test)")]
    later = [r for r, reason in why.items() if reason.startswith("not written: the database")]
    assert len(named) == MAX_REFUSED
    assert len(named) + len(later) == report["rejected"]
    assert report["created"] + report["rejected"] == 310
    stored = await refs(connection, "managers")
    assert {"r-0", "r-31"} <= stored  # fine rows before the cap went in
    assert not any(rows[r - 1][0] in stored for r in why)
