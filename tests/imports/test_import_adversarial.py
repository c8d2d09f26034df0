"""Adversarial tests of the importer's line reader (``engine._Lines``: 64 KiB chunks cut
after the last line end, strict decode with a surrogateescape fallback), its header
checks, and the audit rows ``sql.write`` builds for created records.

Reuses the helpers and the small organisation of ``test_importer`` (its ``importer``
and ``org`` fixtures are declared again here, as they are there). Chunk-boundary
cases shrink ``engine.READ_BYTES`` so that a boundary falls exactly where wanted (the
same code path as 64 KiB, with small files).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.audit.listener import jsonable
from app.core.errors import Unprocessable
from app.imports import engine, sql
from tests.imports.test_importer import (
    COMPLAINTS,
    MANAGERS,
    ORG,
    SALES,
    Importer,
    csv_bytes,
    import_audit,
    reasons,
    refs,
)

HEAD = b"external_ref,name,segment,country,currency"
WIDE = ["external_ref", "name", "legal_name", "segment", "country", "currency"]


async def names(conn: AsyncConnection, prefix: str) -> dict[str, str]:
    result = await conn.execute(
        text("SELECT external_ref, name FROM clients WHERE external_ref LIKE :p"),
        {"p": prefix + "%"},
    )
    return {ref: name for ref, name in result.all()}


async def api_create_changes(connection: AsyncConnection, client_id: str) -> Any:
    """The ``changes`` of the API's create audit row of client ``client_id``."""
    result = await connection.execute(
        text(
            "SELECT changes FROM audit_events WHERE resource = 'clients'"
            " AND resource_id = :id AND action = 'create'"
        ),
        {"id": client_id},
    )
    return result.scalar_one()


async def import_or_refusal(
    importer: Importer, resource: str, data: bytes
) -> dict[str, Any] | Unprocessable:
    """The report, or the refusal (to show either in a failure)."""
    try:
        return await importer(resource, data)
    except Unprocessable as refused:
        return refused


# --- Line ends and chunk boundaries ----------------------------------------------------


@pytest.mark.parametrize("read_bytes", [1, 2, 5, 64, 1 << 16])
async def test_cr_only_line_ends_at_any_read_size(
    importer: Importer,
    connection: AsyncConnection,
    monkeypatch: pytest.MonkeyPatch,
    read_bytes: int,
) -> None:
    """Classic Mac line ends (CR alone), a quoted cell holding CR, LF and CRLF, a bad
    byte in row 4 and a last row without a line end: same rows at every read size."""
    monkeypatch.setattr(engine, "READ_BYTES", read_bytes)
    data = (
        HEAD
        + b"\rcr-1,Egy,small,HU,HUF"
        + b'\rcr-2,"K\xc3\xa9t\rsor\nx\r\ny",small,HU,HUF'
        + b"\rcr-3,Caf\xe9,small,HU,HUF"
        + b"\r\rcr-4,N\xc3\xa9gy,small,HU,HUF"
    )
    report = await importer("clients", data)
    assert (report["rows"], report["created"], report["rejected"]) == (4, 3, 1), report
    assert report["rejections"] == [
        {
            "row": 4,
            "external_ref": "cr-3",
            "reason": "row is not valid UTF-8 (byte 0xe9 at column 2, name)",
        }
    ]
    assert await names(connection, "cr-") == {
        "cr-1": "Egy",
        "cr-2": "Két\rsor\nx\r\ny",
        "cr-4": "Négy",
    }


@pytest.mark.parametrize("shift", range(-3, 4))
async def test_crlf_split_by_the_chunk_boundary(
    importer: Importer,
    connection: AsyncConnection,
    monkeypatch: pytest.MonkeyPatch,
    shift: int,
) -> None:
    """A 96-byte chunk ends on the CR of a CRLF line end (shift 0), of a CRLF inside a
    quoted cell, or around them: no blank row appears (a CR and its LF read as two line
    ends would shift every later row number), the quoted CRLF survives."""
    size = 96
    monkeypatch.setattr(engine, "READ_BYTES", size)
    header = HEAD + b"\r\n"
    # Pad the first row so that its CR is the last byte of the first chunk, +shift.
    fill = size - 1 + shift - len(header) - len(b"sp-1,,small,HU,HUF")
    data = header + b"sp-1," + b"a" * fill + b",small,HU,HUF\r\n"
    assert data[size - 1 + shift] == ord("\r")
    # A quoted CRLF straddling the next boundary, then a rejected row.
    bfill = 2 * size - 1 + shift - len(data) - len(b'sp-2,"')
    data += b'sp-2,"' + b"b" * bfill + b'\r\nc",small,HU,HUF\r\n'
    assert data[2 * size - 1 + shift : 2 * size + 1 + shift] == b"\r\n"
    data += b"sp-3,Zed,small,XX,HUF\r\nsp-4,Last,small,HU,HUF"
    report = await importer("clients", data)
    assert (report["rows"], report["created"]) == (4, 3), report
    assert reasons(report) == {4: "country: 'XX' is not an ISO 3166-1 alpha-2 country code"}
    stored = await names(connection, "sp-")
    assert stored["sp-2"] == "b" * bfill + "\r\nc"
    assert set(stored) == {"sp-1", "sp-2", "sp-4"}


@pytest.mark.parametrize("read_bytes", range(3, 12))
async def test_multibyte_characters_split_at_every_offset(
    importer: Importer,
    connection: AsyncConnection,
    monkeypatch: pytest.MonkeyPatch,
    read_bytes: int,
) -> None:
    """2-, 3- and 4-byte characters and a BOM cut at every position by the read size:
    nothing is read as invalid UTF-8, nothing is mangled."""
    monkeypatch.setattr(engine, "READ_BYTES", read_bytes)
    values = ["Ő", "日本", "𝄞🎉", "aé日𝄞", "é" * 7, "🎉" * 5]
    rows = [["external_ref", "name", "segment", "country", "currency"]]
    rows += [[f"mb-{i}", v, "small", "HU", "HUF"] for i, v in enumerate(values)]
    report = await importer("clients", csv_bytes(rows, bom=True))
    assert (report["created"], report["rejected"]) == (len(values), 0), report
    assert await names(connection, "mb-") == {f"mb-{i}": v for i, v in enumerate(values)}


@pytest.mark.parametrize("read_bytes", [1, 2, 3, 4, 1 << 16])
async def test_bom_followed_by_a_bad_byte_refuses_the_file(
    importer: Importer, monkeypatch: pytest.MonkeyPatch, read_bytes: int
) -> None:
    monkeypatch.setattr(engine, "READ_BYTES", read_bytes)
    data = b"\xef\xbb\xbf\xe9" + HEAD + b"\nx,X,small,HU,HUF\n"
    with pytest.raises(Unprocessable) as caught:
        await importer("clients", data)
    assert caught.value.detail == (
        "The header is not valid UTF-8 (byte 0xe9 at column 1); save the file as UTF-8."
    )


@pytest.mark.parametrize("read_bytes", [3, 16, 1 << 16])
async def test_a_bad_byte_deep_in_a_multiline_cell_names_the_row_where_the_record_starts(
    importer: Importer,
    connection: AsyncConnection,
    monkeypatch: pytest.MonkeyPatch,
    read_bytes: int,
) -> None:
    """The bad byte is on the 4th physical line of record 3 (physical line 6 of the
    file), read in a later chunk than the record's start: reported as row 3 (the row a
    spreadsheet shows), column 3 (legal_name); row 4 goes in with its number."""
    monkeypatch.setattr(engine, "READ_BYTES", read_bytes)
    data = (
        ",".join(WIDE).encode()
        + b"\nml-1,One,,small,HU,HUF"
        + b'\nml-2,Two,"line 1\nline 2\nline 3\nline 4 Caf\xe9",small,HU,HUF'
        + b'\nml-3,Three,"a\nb",small,XX,HUF'
        + b"\nml-4,Four,,small,HU,HUF\n"
    )
    report = await importer("clients", data)
    assert report["rejections"] == [
        {
            "row": 3,
            "external_ref": "ml-2",
            "reason": "row is not valid UTF-8 (byte 0xe9 at column 3, legal_name)",
        },
        {
            "row": 4,
            "external_ref": "ml-3",
            "reason": "country: 'XX' is not an ISO 3166-1 alpha-2 country code",
        },
    ]
    assert set(await names(connection, "ml-")) == {"ml-1", "ml-4"}


async def test_nul_inside_a_multiline_cell_rejects_that_row_only(
    importer: Importer, connection: AsyncConnection
) -> None:
    data = (
        ",".join(WIDE).encode()
        + b'\nnl-1,One,"a\nb\x00c",small,HU,HUF'
        + b"\nnl-2,Two,,small,HU,HUF\n"
    )
    report = await importer("clients", data)
    assert report["rejections"] == [
        {"row": 2, "external_ref": "nl-1", "reason": "contains a NUL character"}
    ]
    assert set(await names(connection, "nl-")) == {"nl-2"}


async def test_nul_in_the_external_ref_is_not_echoed(
    importer: Importer, connection: AsyncConnection
) -> None:
    data = HEAD + b"\nnr\x00-1,One,small,HU,HUF\nnr-2,Two,small,HU,HUF\n"
    report = await importer("clients", data)
    assert report["rejections"] == [
        {"row": 2, "external_ref": None, "reason": "contains a NUL character"}
    ]


# --- Encodings and whole-file refusals ------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "message"),
    [
        ("utf-16-be", "The header contains a NUL character; save the file as UTF-8."),
        (
            "utf-32",
            "The header is not valid UTF-8 (byte 0xff at column 1); save the file as UTF-8.",
        ),
    ],
)
async def test_other_unicode_encodings_refuse_the_file(
    importer: Importer, connection: AsyncConnection, encoding: str, message: str
) -> None:
    data = (HEAD.decode() + "\nenc-1,Café,small,HU,HUF\n").encode(encoding)
    if encoding == "utf-16-be":
        data = b"\xfe\xff" + data  # BOM for big-endian: reported as byte 0xfe
        message = "The header is not valid UTF-8 (byte 0xfe at column 1); save the file as UTF-8."
    with pytest.raises(Unprocessable) as caught:
        await importer("clients", data)
    assert caught.value.detail == message
    assert await names(connection, "enc-") == {}


@pytest.mark.parametrize(
    "data",
    [b"", b"\xef\xbb\xbf"],
    ids=["empty", "bom-only"],
)
async def test_empty_files_are_refused(importer: Importer, data: bytes) -> None:
    with pytest.raises(Unprocessable) as caught:
        await importer("clients", data)
    assert caught.value.detail == "The file is empty."


@pytest.mark.parametrize(
    "data",
    [b"\n", b"\r\n\r\n", b"\xef\xbb\xbf\r\n\r\n\r\n"],
    ids=["lf", "crlf-crlf", "bom-crlf-x3"],
)
async def test_a_file_of_blank_lines_is_empty(importer: Importer, data: bytes) -> None:
    """Was a finding (fixed, minor): a file of line ends only (an export of an empty
    sheet) was refused for a header that "does not fit the format: missing required
    column(s) external_ref, name, ..." instead of "The file is empty." like an empty
    or BOM-only file: the message sent the user looking for columns in a file that has
    no header at all."""
    with pytest.raises(Unprocessable) as caught:
        await importer("clients", data)
    assert caught.value.detail == "The file is empty."


@pytest.mark.parametrize(
    "data",
    [HEAD, HEAD + b"\r\n", b"\xef\xbb\xbf" + HEAD + b"\n\n\n", HEAD.upper() + b"\r"],
    ids=["no-line-end", "crlf", "bom-and-blank-lines", "upper-cr"],
)
async def test_a_file_with_only_a_header_imports_nothing(
    importer: Importer, connection: AsyncConnection, data: bytes
) -> None:
    report = await importer("clients", data)
    assert (report["rows"], report["created"], report["rejected"]) == (0, 0, 0), report
    assert await import_audit(connection, importer.last_id) == []


async def test_windows_1252_file_rejects_each_accented_row_and_imports_the_rest(
    importer: Importer, connection: AsyncConnection
) -> None:
    """A Windows-1252 export (é = 0xE9): ASCII rows go in, accented ones are rejected
    one by one, each naming its byte and column. (Documents current behaviour; see the
    report for whether a file that is evidently not UTF-8 should rather be refused.)"""
    text_ = (
        HEAD.decode()
        + "\nw-1,Café,small,FR,EUR\nw-2,Plain,small,FR,EUR\nw-3,Zoë Ltd,small,GB,GBP\n"
    )
    report = await importer("clients", text_.encode("cp1252"))
    assert (report["created"], report["rejected"]) == (1, 2), report
    assert reasons(report) == {
        2: "row is not valid UTF-8 (byte 0xe9 at column 2, name)",
        4: "row is not valid UTF-8 (byte 0xeb at column 2, name)",
    }
    assert set(await names(connection, "w-")) == {"w-2"}


async def test_rows_with_more_or_fewer_cells_are_rejected_alone(
    importer: Importer, connection: AsyncConnection
) -> None:
    data = HEAD + b"\nc-1,One,small\nc-2,Two,small,HU,HUF,extra\nc-3,Three,small,HU,HUF\n"
    report = await importer("clients", data)
    assert reasons(report) == {
        2: "has 3 cells, the header has 5",
        3: "has 6 cells, the header has 5",
    }
    assert set(await names(connection, "c-")) == {"c-3"}


async def test_a_long_last_line_without_a_line_end(
    importer: Importer, connection: AsyncConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A last line of ~600 KB (many cells, no line end), read in 4 KiB chunks: one
    rejected row, the rows before it go in."""
    monkeypatch.setattr(engine, "READ_BYTES", 4096)
    data = HEAD + b"\nll-1,One,small,HU,HUF\nll-2," + b"x," * 300_000 + b"y"
    report = await importer("clients", data)
    assert reasons(report) == {3: "has 300002 cells, the header has 5"}
    assert set(await names(connection, "ll-")) == {"ll-1"}


async def test_a_cell_beyond_one_mib_refuses_the_file_naming_its_row(
    importer: Importer, connection: AsyncConnection
) -> None:
    data = HEAD + b"\nbig-1,One,small,HU,HUF\nbig-2," + b"x" * (engine.MAX_CELL + 10)
    data += b",small,HU,HUF\nbig-3,Three,small,HU,HUF\n"
    with pytest.raises(Unprocessable) as caught:
        await importer("clients", data)
    assert caught.value.detail.startswith("Row 3 cannot be read as CSV: field larger than")
    assert await names(connection, "big-") == {}


async def test_an_unclosed_quote_does_not_swallow_the_rest_of_the_file(
    importer: Importer, connection: AsyncConnection, org: Any
) -> None:
    """Was a finding (fixed): a quote opened and never closed in the last column (a free-text
    ``resolution``) makes ``csv.reader`` (non-strict) read every following line into
    that cell up to the end of the file: row 2 is *created* with a resolution holding
    rows 3 and 4 as text, rows 3 and 4 are never counted, and the report says
    rows 1, created 1, rejected 0. The file should be refused (a record that is not
    CSV), or at least the row rejected, never the later rows silently dropped."""
    head = ",".join(COMPLAINTS[0]).encode()
    data = (
        head
        + b'\nuq-1,t-acme,Late,,delivery,high,email,2024-02-05,closed,2024-02-07,"Refunded'
        + b"\nuq-2,t-acme,Wrong,,billing,low,email,2024-02-06,open,,"
        + b"\nuq-3,t-nihon,Rude,,service,low,phone,2024-02-06,open,,\n"
    )
    outcome = await import_or_refusal(importer, "complaints", data)
    stored = (
        await connection.execute(
            text("SELECT resolution FROM complaints WHERE external_ref = 'uq-1'")
        )
    ).scalar()
    assert isinstance(outcome, Unprocessable), (outcome, stored)
    assert outcome.detail.startswith("Row 2 cannot be read as CSV"), outcome.detail
    assert await refs(connection, "complaints") == {"t-c1", "t-c2"}


async def test_an_unclosed_quote_in_a_middle_column_is_not_a_silent_loss(
    importer: Importer, connection: AsyncConnection
) -> None:
    """Was a finding (fixed, same cause): an unclosed quote in a middle column: the rest of the file
    becomes one rejected row ("has 2 cells, the header has 5") and 2 later rows vanish
    from every count; the reason says nothing of the quote."""
    data = HEAD + b'\nq-1,"Acme,small,HU,HUF\nq-2,Two,small,HU,HUF\nq-3,Three,small,HU,HUF\n'
    outcome = await import_or_refusal(importer, "clients", data)
    assert isinstance(outcome, Unprocessable), outcome
    assert outcome.detail.startswith("Row 2 cannot be read as CSV"), outcome.detail


# --- Audit rows of created records ---------------------------------------------------

TARGETS = {
    "managers": sql.MANAGERS,
    "clients": sql.CLIENTS,
    "assignments": sql.ASSIGNMENTS,
    "interactions": sql.INTERACTIONS,
    "complaints": sql.COMPLAINTS,
    "sales": sql.SALES,
    "quotas": sql.QUOTAS,
}


def _as_the_api_renders(stored: Any) -> Any:
    """What the API's audit listener writes for a stored value (``jsonable``)."""
    return jsonable(stored)


def _same(audited: Any, stored: Any) -> bool:
    """Whether an audit value names the stored value in the API's JSON type: money as a
    string (any scale), instants and dates as ISO 8601 strings, intervals as a number of
    seconds, the rest as ``jsonable`` renders it."""
    if isinstance(stored, Decimal):
        return isinstance(audited, str) and Decimal(audited) == Decimal(stored)
    if isinstance(stored, datetime):
        return isinstance(audited, str) and datetime.fromisoformat(audited) == stored
    if isinstance(stored, date):
        return bool(audited == stored.isoformat())
    if isinstance(stored, timedelta):
        return isinstance(audited, int | float) and audited == stored.total_seconds()
    expected: Any = _as_the_api_renders(stored)
    return bool(audited == expected)


@pytest.mark.parametrize("resource", list(ORG))
async def test_a_created_records_audit_row_carries_every_written_value(
    importer: Importer, connection: AsyncConnection, org: Any, resource: str
) -> None:
    """Each created record's ``changes`` holds every written column as ``[null, value]``
    equal to what was stored, in the JSON type the API's listener uses for that column.

    Was a finding (fixed, complaints): ``active_time`` (an interval) is written as PostgreSQL's text
    ("00:00:00", "2 days") where the API's audit rows carry intervals as a number of
    seconds (``jsonable``: ``timedelta.total_seconds()``, e.g. 172800.0): a reader of
    the audit log gets two types for the same column depending on the source."""
    target = TARGETS[resource]
    written = {"external_ref", *(name for name, _ in target.values)}
    if target.link is not None:
        written.add(target.link.column)
    stored_rows = {
        str(r["id"]): r
        for r in (await connection.execute(text(f"SELECT * FROM {resource}"))).mappings()
    }
    audit = (
        await connection.execute(
            text(
                "SELECT resource_id, changes FROM audit_events WHERE resource = :r"
                " AND source = 'import' AND action = 'create'"
                " AND resource_id = ANY(CAST(:ids AS text[]))"  # not other modules' rows
            ),
            {"r": resource, "ids": list(stored_rows)},
        )
    ).all()
    assert len(audit) == len(ORG[resource]) - 1
    wrong: dict[str, Any] = {}
    for event in audit:
        changes = dict(event.changes)
        assert changes.pop("import_row")[0] is None
        assert changes.pop("import_id")[0] is None
        assert set(changes) == written
        stored = stored_rows[event.resource_id]
        for column, (before, after) in changes.items():
            assert before is None
            if not _same(after, stored[column]):
                wrong[f"{stored['external_ref']}.{column}"] = (after, stored[column])
    assert not wrong, f"audit values that differ from the stored ones in value or type: {wrong}"


async def test_an_imported_amount_is_audited_as_the_api_audits_the_same_amount(
    importer: Importer, connection: AsyncConnection, client: AsyncClient
) -> None:
    """Was a finding (fixed): the API normalises money to the currency's minor unit (EUR 1000.5 is
    stored, returned and audited as "1000.50"); an import of the same client audits the
    cell as spelled ("1000.5"; "1,000.5" and "1.0005e3" also give "1000.5"), so the same
    value reads differently in the audit log depending on its source. (The stored value
    is the same: numeric(19,4).)"""
    response = await client.post(
        "/v1/clients",
        json={
            "name": "Via API",
            "external_ref": "am-api",
            "segment": "small",
            "country": "DE",
            "currency": "EUR",
            "annual_value": {"amount": "1000.5", "currency": "EUR"},
        },
    )
    assert response.status_code == 201, response.text
    api = await api_create_changes(connection, response.json()["id"])
    assert api["annual_value_amount"] == [None, "1000.50"]
    rows = [
        ["external_ref", "name", "segment", "country", "currency", "annual_value"]
        + ["annual_value_currency"],
        ["am-1", "Via import", "small", "DE", "EUR", "1000.5", "EUR"],
        ["am-2", "Grouped", "small", "DE", "EUR", "1,000.5", "EUR"],
    ]
    report = await importer("clients", rows)
    assert report["created"] == 2, report
    audited = {
        a.changes["external_ref"][1]: a.changes["annual_value_amount"]
        for a in await import_audit(connection, importer.last_id)
    }
    assert audited == {"am-1": api["annual_value_amount"], "am-2": api["annual_value_amount"]}


async def test_import_and_api_create_rows_agree_on_common_columns(
    importer: Importer, connection: AsyncConnection, client: AsyncClient
) -> None:
    """The same client written both ways: every column the import audits the API audits
    too, with the same value (external_ref aside). The API row also has id, created_at,
    created_by and archived_at, which the import row leaves to the audit row's own
    fields (resource_id, at, actor)."""
    body = {
        "name": "Twin Kft.",
        "legal_name": "Twin Korlátolt Felelősségű Társaság",
        "industry": "Software",
        "segment": "key",
        "lifecycle_stage": "active",
        "country": "HU",
        "currency": "HUF",
        "time_zone": "Europe/Budapest",
        "renewal_date": "2026-03-31",
        "annual_value": {"amount": "1250000.00", "currency": "HUF"},
        "external_ref": "tw-api",
    }
    response = await client.post("/v1/clients", json=body)
    assert response.status_code == 201, response.text
    api = await api_create_changes(connection, response.json()["id"])
    rows: list[list[str]] = [
        ["external_ref", "name", "legal_name", "industry", "segment", "lifecycle_stage"]
        + ["country", "currency", "time_zone", "renewal_date", "annual_value"]
        + ["annual_value_currency"],
        [
            "tw-imp",
            str(body["name"]),
            str(body["legal_name"]),
            "Software",
            "key",
            "active",
            "hu",
            "huf",
        ]
        + ["Europe/Budapest", "2026-03-31", "1250000.00", "HUF"],
    ]
    await importer("clients", rows)
    [event] = await import_audit(connection, importer.last_id)
    imported = {k: v for k, v in event.changes.items() if k not in ("import_row", "import_id")}
    assert set(imported) <= set(api), set(imported) - set(api)
    differ = {
        k: (imported[k], api[k]) for k in imported if k != "external_ref" and imported[k] != api[k]
    }
    assert not differ
    assert set(api) - set(imported) == {"id", "created_at", "created_by", "archived_at"}


async def test_history_endpoint_shows_the_imported_create_with_its_values(
    importer: Importer, connection: AsyncConnection, client: AsyncClient, org: Any
) -> None:
    acme = (
        await connection.execute(text("SELECT id FROM clients WHERE external_ref = 't-acme'"))
    ).scalar_one()
    response = await client.get(f"/v1/clients/{acme}/history")
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    creates = {
        (i["resource"], i["changes"]["external_ref"][1]) for i in items if i["action"] == "create"
    }
    assert {("clients", "t-acme"), ("sales", "t-s1"), ("complaints", "t-c1")} <= creates
    sale = next(
        i for i in items if i["resource"] == "sales" and i["changes"]["external_ref"][1] == "t-s1"
    )
    assert sale["source"] == "import"
    assert sale["changes"]["amount"] == [None, "250000.00"]
    assert sale["changes"]["product"] == [None, "Widgets"]


# --- Updates and re-imports ---------------------------------------------------------


async def test_an_update_still_carries_only_the_changed_columns(
    importer: Importer, connection: AsyncConnection, org: Any
) -> None:
    """A complaint (only title..severity are updatable; a changed resolution is ignored)
    and a manager whose e-mail changes case: ``[before, after]`` of the changed columns
    only, no create-style dump."""
    rows = [list(r) for r in COMPLAINTS]
    rows[1][2] = "Very late delivery"
    rows[2][10] = "Changed resolution (not updatable)"
    report = await importer("complaints", rows)
    assert (report["updated"], report["unchanged"]) == (1, 1), report
    [event] = await import_audit(connection, importer.last_id)
    assert event.action == "update"
    assert event.changes == {
        "import_row": [None, 2],
        "import_id": [None, importer.last_id],
        "title": ["Late delivery", "Very late delivery"],
    }
    managers = [list(r) for r in MANAGERS]
    managers[3][1] = "BOB@imp.test"
    report = await importer("managers", managers)
    [event] = await import_audit(connection, importer.last_id)
    assert event.changes == {
        "import_row": [None, 4],
        "import_id": [None, importer.last_id],
        "email": ["bob@imp.test", "BOB@imp.test"],
    }


async def test_reimport_in_other_spellings_writes_no_audit_row(
    importer: Importer, connection: AsyncConnection, org: Any
) -> None:
    """The same sales, spelled differently (grouped amounts, other offsets for the same
    instant, lower-case currency, padded cells, CRLF, BOM): nothing is updated and no
    audit row is written."""
    rows = [list(r) for r in SALES]
    rows[1][2] = " 250,000.00 "
    rows[2][2], rows[2][3], rows[2][4] = "1.2e5", "jpy", "2024-03-01T01:00:00+00:00"
    rows[3][2] = "-50"
    before = (await connection.execute(text("SELECT count(*) FROM audit_events"))).scalar_one()
    closed: dict[str, datetime] = dict(
        (await connection.execute(text("SELECT external_ref, closed_at FROM sales"))).all()
    )
    rows[1][4] = closed["t-s1"].astimezone(timezone(timedelta(hours=-5))).isoformat()
    report = await importer("sales", csv_bytes(rows, bom=True, newline="\r\n"))
    assert (report["unchanged"], report["updated"], report["created"]) == (3, 0, 0), report
    after = (await connection.execute(text("SELECT count(*) FROM audit_events"))).scalar_one()
    assert after == before


@pytest.mark.parametrize("resource", list(ORG))
async def test_reimport_of_every_resource_writes_no_audit_row(
    importer: Importer, connection: AsyncConnection, org: Any, resource: str
) -> None:
    before = (await connection.execute(text("SELECT count(*) FROM audit_events"))).scalar_one()
    # CR line ends (a cell holding LF is quoted by hand: the writer quotes only "\r").
    rows = [[f'"{c}"' if "\n" in c else c for c in row] for row in ORG[resource]]
    data = b"\r".join(",".join(row).encode() for row in rows)
    report = await importer(resource, data)
    assert report["unchanged"] == len(ORG[resource]) - 1, report
    after = (await connection.execute(text("SELECT count(*) FROM audit_events"))).scalar_one()
    assert after == before


async def test_a_created_lead_later_in_the_file_is_in_its_reports_audit(
    importer: Importer, connection: AsyncConnection
) -> None:
    """The lead comes after its report in the file: the report's create row carries the
    lead's new id (resolved in the same statement), equal to what was stored."""
    rows = [
        ["external_ref", "email", "full_name", "reports_to_ref"],
        ["lt-ann", "lt-ann@imp.test", "Ann", "lt-lead"],
        ["lt-lead", "lt-lead@imp.test", "Lead", ""],
    ]
    await importer("managers", rows)
    ids: dict[str, uuid.UUID] = dict(
        (
            await connection.execute(
                text("SELECT external_ref, id FROM managers WHERE external_ref LIKE 'lt-%'")
            )
        ).all()
    )
    audit = {
        a.changes["external_ref"][1]: a for a in await import_audit(connection, importer.last_id)
    }
    assert audit["lt-ann"].changes["reports_to_id"] == [None, str(ids["lt-lead"])]
    assert audit["lt-lead"].changes["reports_to_id"] == [None, None]
    assert uuid.UUID(audit["lt-ann"].resource_id) == ids["lt-ann"]


async def test_complaint_active_time_is_audited_as_the_api_audits_it(
    importer: Importer, connection: AsyncConnection, client: AsyncClient, org: Any
) -> None:
    """Was a finding (fixed): the API audits ``active_time`` as seconds (a transition after 2 days:
    ``[0.0, 172800.0]``); the import's create row of a complaint closed after 2 days
    says ``[null, "2 days"]`` (PostgreSQL's interval text, neither a number nor ISO
    8601)."""
    acme = (
        await connection.execute(text("SELECT id FROM clients WHERE external_ref = 't-acme'"))
    ).scalar_one()
    response = await client.post(
        "/v1/complaints",
        json={
            "client_id": str(acme),
            "title": "Via API",
            "category": "billing",
            "severity": "medium",
            "received_at": "2024-02-06T00:00:00Z",
        },
    )
    assert response.status_code == 201, response.text
    complaint_id = response.json()["id"]
    response = await client.post(
        f"/v1/complaints/{complaint_id}/transitions",
        json={"to": "acknowledged", "at": "2024-02-08T00:00:00Z"},
    )
    assert response.status_code == 201, response.text
    api = (
        await connection.execute(
            text(
                "SELECT changes FROM audit_events WHERE resource = 'complaints'"
                " AND resource_id = :id AND action = 'update' ORDER BY seq DESC LIMIT 1"
            ),
            {"id": complaint_id},
        )
    ).scalar_one()
    assert api["active_time"] == [0.0, 172800.0]
    imported = (
        await connection.execute(
            text(
                "SELECT a.changes FROM audit_events a JOIN complaints c"
                " ON a.resource_id = c.id::text WHERE c.external_ref = 't-c2'"
                " AND a.resource = 'complaints' AND a.action = 'create'"
            )
        )
    ).scalar_one()
    assert imported["active_time"] == [None, api["active_time"][1]]
