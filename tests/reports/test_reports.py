"""The reports: values checked against data created through the API, scope, CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient, Response
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.config import Settings
from app.core.auth import Role
from app.reports import service
from app.reports.export import wants_csv
from tests.assertions import assert_invalid, assert_problem
from tests.conftest import make_token
from tests.factories import (
    create_assignment,
    create_client,
    create_complaint,
    create_interaction,
    create_manager,
    create_quota,
    create_sale,
    insert_clients,
    list_flags,
    move_complaint,
    move_flag,
    run_rules,
)

ACCOUNT = "/v1/reports/account-status"
QUOTAS = "/v1/reports/quota-attainment"
COMPLAINTS = "/v1/reports/complaints"
CSV = {"Accept": "text/csv"}
LONG_AGO = "2025-01-01T00:00:00Z"
NOBODY = "00000000-0000-4000-8000-000000000000"
POINTS = {"critical": 40, "high": 25, "medium": 10, "low": 5}


def ago(**delta: float) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).isoformat()


def as_role(app: FastAPI, settings: Settings, role: Role, subject: str) -> AsyncClient:
    """An HTTP client (enter it with ``async with``) whose token has ``role`` and
    ``subject`` (a manager id)."""
    token = make_token(settings, role, subject=subject)
    return AsyncClient(
        transport=ASGITransport(app=app),
        base_url="http://test",
        headers={"Authorization": f"Bearer {token}"},
    )


def parse_csv(response: Response) -> list[list[str]]:
    """Assert the CSV framing (type, attachment, BOM, CRLF) and return the rows."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv"), response.headers
    disposition = response.headers["content-disposition"]
    assert disposition.startswith("attachment; filename="), disposition
    assert disposition.rstrip('"').endswith(".csv"), disposition
    raw = response.content
    assert raw.startswith(b"\xef\xbb\xbf"), raw[:10]
    text = raw[3:].decode("utf-8")
    assert text.endswith("\r\n")
    assert "\n" not in text.replace("\r\n", ""), "bare LF line end"
    return list(csv.reader(io.StringIO(text, newline="")))


@contextmanager
def count_statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """The application's SQL statements (not the test's SAVEPOINT bookkeeping)."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not statement.lstrip().upper().startswith(("SAVEPOINT", "RELEASE", "ROLLBACK")):
            seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


async def all_pages(http: AsyncClient, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await http.get(ACCOUNT, params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        items.extend(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return items


def by_client(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {i["client_id"]: i for i in items}


async def assigned_client(http: AsyncClient, manager_id: str, **fields: Any) -> dict[str, Any]:
    """A client with ``manager_id`` as primary since 2025."""
    made = await create_client(http, **fields)
    await create_assignment(http, made["id"], manager_id, starts_at=LONG_AGO)
    return made


class TestAccountStatusReport:
    async def test_values_match_the_api(self, client: AsyncClient) -> None:
        anna = await create_manager(client, full_name="Anna Kovács")
        bob = await create_manager(client, full_name="Bob Smith")
        acme = await assigned_client(
            client, anna["id"], name="Acme", segment="key", country="AE", lifecycle_stage="active"
        )
        covered = await assigned_client(client, anna["id"], name="Covered")
        await create_assignment(
            client, covered["id"], bob["id"], role="cover", starts_at=ago(days=1)
        )
        lonely = await create_client(client, name="Unassigned")
        await create_interaction(client, acme["id"], anna["id"], occurred_at=ago(days=9))
        latest = await create_interaction(client, acme["id"], anna["id"], occurred_at=ago(days=2))
        await create_interaction(client, acme["id"], anna["id"], occurred_at=ago(days=5))
        await create_complaint(client, acme["id"], severity="critical", received_at=ago(days=3))
        await create_complaint(client, acme["id"], severity="low")
        done = await create_complaint(client, acme["id"], severity="medium")
        for step in ("acknowledged", "in_progress", "resolved"):
            await move_complaint(client, done["id"], step)
        await run_rules(client)
        flags = await list_flags(client, client_id=acme["id"])
        assert len(flags) >= 2, [f["rule_key"] for f in flags]
        # Acknowledged still counts toward health, snoozed does not (but is still open).
        await move_flag(client, flags[0]["id"], "acknowledged")
        until = (datetime.now(UTC) + timedelta(days=3)).isoformat()
        await move_flag(client, flags[1]["id"], "snoozed", until=until)

        items = by_client(await all_pages(client))
        row = items[acme["id"]]
        health = (await client.get(f"/v1/clients/{acme['id']}/health")).json()
        flags = await list_flags(client, client_id=acme["id"])
        expected = max(
            0,
            100
            - sum(POINTS[f["severity"]] for f in flags if f["status"] in ("open", "acknowledged")),
        )
        assert row["health_score"] == health["score"] == expected
        assert expected < 100
        assert row["open_flags"] == len(health["open_flags"]) == len(flags)
        assert row == {
            "client_id": acme["id"],
            "client_name": "Acme",
            "segment": "key",
            "country": "AE",
            "responsible_manager_id": anna["id"],
            "responsible_manager_name": "Anna Kovács",
            "health_score": expected,
            "last_contact_at": latest["occurred_at"],
            "open_complaints": 2,
            "open_flags": len(flags),
        }
        assert items[covered["id"]]["responsible_manager_id"] == bob["id"]
        assert items[covered["id"]]["responsible_manager_name"] == "Bob Smith"
        assert items[lonely["id"]]["responsible_manager_id"] is None
        assert items[lonely["id"]]["last_contact_at"] is None
        assert items[lonely["id"]]["open_complaints"] == 0

    async def test_archived_clients_are_left_out(self, client: AsyncClient) -> None:
        gone = await create_client(client)
        kept = await create_client(client)
        archived = await client.post(f"/v1/clients/{gone['id']}/archive")
        assert archived.status_code == 200, archived.text
        ids = {i["client_id"] for i in await all_pages(client)}
        assert kept["id"] in ids
        assert gone["id"] not in ids

    async def test_keyset_pages_one_statement_each(
        self, client: AsyncClient, connection: AsyncConnection, engine: AsyncEngine
    ) -> None:
        ids = {str(i) for i in await insert_clients(connection, 23, ties=4)}
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            params: dict[str, Any] = {"limit": 5, **({"cursor": cursor} if cursor else {})}
            with count_statements(engine) as statements:
                response = await client.get(ACCOUNT, params=params)
            assert response.status_code == 200, response.text
            assert len(statements) == 1, statements
            body = response.json()
            seen.extend(i["client_id"] for i in body["items"])
            pages += 1
            cursor = body["next_cursor"]
            if cursor is None:
                break
        assert pages == 5
        assert len(seen) == len(set(seen)) == 23
        assert set(seen) == ids

    async def test_bad_cursor_is_422(self, client: AsyncClient) -> None:
        assert_invalid(await client.get(ACCOUNT, params={"cursor": "nope"}), "query.cursor")

    async def test_manager_filter_and_team(self, client: AsyncClient) -> None:
        lead = await create_manager(client, role="team_lead")
        anna = await create_manager(client, reports_to_id=lead["id"])
        other = await create_manager(client)
        mine = await assigned_client(client, anna["id"])
        leads_own = await assigned_client(client, lead["id"])
        shared = await assigned_client(client, other["id"])
        await create_assignment(
            client, shared["id"], anna["id"], role="secondary", starts_at=LONG_AGO
        )
        ended = await create_client(client)
        await create_assignment(
            client, ended["id"], anna["id"], starts_at=LONG_AGO, ends_at="2025-06-01T00:00:00Z"
        )
        await assigned_client(client, other["id"])

        only_anna = {i["client_id"] for i in await all_pages(client, manager_id=anna["id"])}
        assert only_anna == {mine["id"], shared["id"]}
        only_lead = {i["client_id"] for i in await all_pages(client, manager_id=lead["id"])}
        assert only_lead == {leads_own["id"]}
        team = {
            i["client_id"]
            for i in await all_pages(client, manager_id=lead["id"], include_team="true")
        }
        assert team == {mine["id"], shared["id"], leads_own["id"]}
        assert_problem(await client.get(ACCOUNT, params={"manager_id": NOBODY}), 404)

    async def test_account_manager_sees_only_their_clients(
        self, client: AsyncClient, app: FastAPI, settings: Settings
    ) -> None:
        anna = await create_manager(client)
        bob = await create_manager(client)
        mine = await assigned_client(client, anna["id"])
        await assigned_client(client, bob["id"])
        async with as_role(app, settings, Role.account_manager, anna["id"]) as http:
            items = await all_pages(http)
            assert [i["client_id"] for i in items] == [mine["id"]]
            assert_problem(await http.get(ACCOUNT, params={"manager_id": bob["id"]}), 404)
            mine_only = await all_pages(http, manager_id=anna["id"], include_team="true")
            assert [i["client_id"] for i in mine_only] == [mine["id"]]
            exported = parse_csv(await http.get(ACCOUNT, headers=CSV))
            assert [r[0] for r in exported[1:]] == [mine["id"]]

    async def test_sales_manager_sees_their_team(
        self, client: AsyncClient, app: FastAPI, settings: Settings
    ) -> None:
        boss = await create_manager(client, role="sales_manager")
        anna = await create_manager(client, reports_to_id=boss["id"])
        outsider = await create_manager(client)
        mine = await assigned_client(client, anna["id"])
        await assigned_client(client, outsider["id"])
        async with as_role(app, settings, Role.sales_manager, boss["id"]) as http:
            assert [i["client_id"] for i in await all_pages(http)] == [mine["id"]]
            team = await all_pages(http, manager_id=boss["id"], include_team="true")
            assert [i["client_id"] for i in team] == [mine["id"]]
            assert_problem(await http.get(ACCOUNT, params={"manager_id": outsider["id"]}), 404)


class TestAccountStatusCsv:
    async def test_bom_header_scripts_and_injection(self, client: AsyncClient) -> None:
        anna = await create_manager(client, full_name="+Anna @Kovács")
        names = ["شركة الأمل", "חברת השלום", "=cmd()", "-2+3", "@SUM(A1)", 'Ügyfél, "Kft."']
        made = [await assigned_client(client, anna["id"], name=n) for n in names]
        rows = parse_csv(await client.get(ACCOUNT, headers=CSV))
        assert rows[0] == list(service.ACCOUNT_STATUS_COLUMNS)
        by_id = {r[0]: r for r in rows[1:]}
        assert by_id[made[0]["id"]][1] == "شركة الأمل"
        assert by_id[made[1]["id"]][1] == "חברת השלום"
        assert by_id[made[2]["id"]][1] == "'=cmd()"
        assert by_id[made[3]["id"]][1] == "'-2+3"
        assert by_id[made[4]["id"]][1] == "'@SUM(A1)"
        assert by_id[made[5]["id"]][1] == 'Ügyfél, "Kft."'
        first = by_id[made[0]["id"]]
        assert first[4] == anna["id"]
        assert first[5] == "'+Anna @Kovács"
        assert first[6] == "100"  # numbers are never quoted
        assert first[7] == ""  # no contact yet
        assert first[8:] == ["0", "0"]

    async def test_streams_every_row_past_the_page_size(
        self, client: AsyncClient, connection: AsyncConnection, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        await insert_clients(connection, 23, ties=3)
        in_order = [i["client_id"] for i in await all_pages(client, limit=5)]
        assert len(set(in_order)) == 23
        monkeypatch.setattr(service, "CSV_CHUNK", 4)
        rows = parse_csv(await client.get(ACCOUNT, params={"limit": 2}, headers=CSV))
        assert [r[0] for r in rows[1:]] == in_order

    async def test_cap_ends_with_a_note_and_a_cursor(
        self, client: AsyncClient, connection: AsyncConnection, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        ids = [str(i) for i in await insert_clients(connection, 12)]
        monkeypatch.setattr(service, "CSV_CHUNK", 4)
        monkeypatch.setattr(service, "CSV_MAX_ROWS", 10)
        rows = parse_csv(await client.get(ACCOUNT, headers=CSV))
        assert [r[0] for r in rows[1:11]] == ids[:10]
        note = rows[11][0]
        assert note.startswith("# truncated after 10 rows"), note
        cursor = note.split("cursor=")[1].split()[0]
        rest = parse_csv(await client.get(ACCOUNT, params={"cursor": cursor}, headers=CSV))
        assert [r[0] for r in rest[1:]] == ids[10:]

    async def test_errors_before_streaming_are_problems(self, client: AsyncClient) -> None:
        assert_problem(await client.get(ACCOUNT, params={"manager_id": NOBODY}, headers=CSV), 404)
        assert_invalid(
            await client.get(ACCOUNT, params={"cursor": "x"}, headers=CSV), "query.cursor"
        )


class TestNegotiation:
    @pytest.mark.parametrize(
        ("accept", "csv_wanted"),
        [
            (None, False),
            ("", False),
            ("*/*", False),
            ("application/json", False),
            ("text/csv", True),
            ("text/csv; charset=utf-8", True),
            ("text/*", True),
            ("text/csv, application/json", False),
            ("text/csv;q=0.5, application/json", False),
            ("application/json;q=0.5, text/csv", True),
            ("text/csv, */*;q=0.1", True),
            ("text/html, text/csv;q=0.9, */*;q=0.8", True),
            ("text/csv;q=0", False),
            ("application/xml", False),
        ],
    )
    def test_wants_csv(self, accept: str | None, csv_wanted: bool) -> None:
        assert wants_csv(accept) is csv_wanted

    @pytest.mark.parametrize("path", [ACCOUNT, f"{QUOTAS}?period=FY2026-Q3", COMPLAINTS])
    async def test_json_unless_csv_preferred(self, client: AsyncClient, path: str) -> None:
        for accept in ("application/json", "*/*", "text/csv;q=0.2, application/json"):
            response = await client.get(path, headers={"Accept": accept})
            assert response.status_code == 200, response.text
            assert response.headers["content-type"] == "application/json"
        exported = await client.get(path, headers={"Accept": "application/json;q=0.5, text/csv"})
        assert parse_csv(exported)[0]

    def test_openapi_documents_the_csv_variant(self, app: FastAPI) -> None:
        paths = app.openapi()["paths"]
        for path, operation_id in (
            (ACCOUNT, "get_account_status_report"),
            (QUOTAS, "get_quota_attainment_report"),
            (COMPLAINTS, "get_complaints_report"),
        ):
            operation = paths[path]["get"]
            assert operation["operationId"] == operation_id
            assert operation["description"]
            content = operation["responses"]["200"]["content"]
            assert set(content) == {"application/json", "text/csv"}


class TestQuotaAttainmentReport:
    async def _team(self, client: AsyncClient, connection: AsyncConnection) -> dict[str, Any]:
        """boss (sales_manager) ← lead (team_lead) ← anna; quotas in FY2026-Q3 (ended)."""
        boss = await create_manager(client, role="sales_manager", full_name="A Boss")
        lead = await create_manager(
            client, role="team_lead", reports_to_id=boss["id"], full_name="B Lead"
        )
        anna = await create_manager(client, reports_to_id=lead["id"], full_name="C Anna")
        acme = await assigned_client(client, anna["id"], currency="HUF")
        rate = await client.post(
            "/v1/fx-rates",
            json={"base": "EUR", "quote": "HUF", "rate": "400", "valid_on": "2026-01-01"},
        )
        assert rate.status_code == 201, rate.text
        q3 = ("2026-07-01T00:00:00Z", "2026-10-01T00:00:00Z")
        anna_sales = await create_quota(client, anna["id"], *q3, amount="1000.00")
        lead_calls = await create_quota(
            client,
            lead["id"],
            *q3,
            metric="interaction_count",
            target=None,
            target_count=2,
        )
        await create_sale(client, acme["id"], "600.00", "EUR", "2026-08-01T10:00:00Z")
        await create_sale(client, acme["id"], "40000.00", "HUF", "2026-09-01T10:00:00Z")
        await create_sale(client, acme["id"], "999.00", "EUR", "2026-10-02T10:00:00Z")  # Q4
        for day in ("2026-07-10", "2026-08-10", "2026-09-10"):
            await create_interaction(client, acme["id"], lead["id"], occurred_at=f"{day}T09:00:00Z")
        outsider = await create_manager(client, full_name="D Outsider")
        other = await create_quota(client, outsider["id"], *q3, amount="500.00", currency="USD")
        return {
            "boss": boss,
            "lead": lead,
            "anna": anna,
            "outsider": outsider,
            "anna_sales": anna_sales,
            "lead_calls": lead_calls,
            "other": other,
        }

    async def test_quotas_and_rollups(
        self, client: AsyncClient, connection: AsyncConnection
    ) -> None:
        t = await self._team(client, connection)
        response = await client.get(QUOTAS, params={"period": "FY2026-Q3"})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["period"] == "FY2026-Q3"
        assert body["period_start"] == "2026-07-01T00:00:00Z"
        assert body["currency"] == "EUR"
        quotas = {q["quota_id"]: q for q in body["quotas"]}
        assert quotas[t["anna_sales"]["id"]] == {
            "quota_id": t["anna_sales"]["id"],
            "manager_id": t["anna"]["id"],
            "manager_name": "C Anna",
            "metric": "sales_amount",
            "unit": "EUR",
            "period_start": "2026-07-01T00:00:00Z",
            "period_end": "2026-10-01T00:00:00Z",
            "target": "1000.00",
            "achieved": "700.00",  # 600 EUR + 40,000 HUF at 400
            "ratio": "0.7000",
            "status": "missed",
        }
        calls = quotas[t["lead_calls"]["id"]]
        assert (calls["unit"], calls["target"], calls["achieved"]) == ("interactions", "2", "3")
        assert (calls["ratio"], calls["status"]) == ("1.5000", "met")
        assert quotas[t["other"]["id"]]["unit"] == "USD"
        assert quotas[t["other"]["id"]]["achieved"] == "0.00"
        assert [q["manager_name"] for q in body["quotas"]] == sorted(
            q["manager_name"] for q in body["quotas"]
        )
        # The same figures as the per-quota attainment endpoint.
        single = await client.get(
            f"/v1/quotas/{t['anna_sales']['id']}/attainment", params={"as_of": body["as_of"]}
        )
        assert single.status_code == 200, single.text
        for key in ("target", "achieved", "ratio", "status"):
            assert single.json()[key] == quotas[t["anna_sales"]["id"]][key]

        teams = {(r["lead_id"], r["metric"]): r for r in body["teams"]}
        assert set(teams) == {
            (t["boss"]["id"], "sales_amount"),
            (t["boss"]["id"], "interaction_count"),
            (t["lead"]["id"], "sales_amount"),
            (t["lead"]["id"], "interaction_count"),
        }
        boss_sales = teams[(t["boss"]["id"], "sales_amount")]
        assert boss_sales["lead_name"] == "A Boss"
        assert (boss_sales["target"], boss_sales["achieved"]) == ("1000.00", "700.00")
        assert (boss_sales["ratio"], boss_sales["quotas"], boss_sales["unit"]) == (
            "0.7000",
            1,
            "EUR",
        )
        rollup = await client.get(
            f"/v1/managers/{t['lead']['id']}/attainment",
            params={"period": "FY2026-Q3", "as_of": body["as_of"]},
        )
        assert rollup.status_code == 200, rollup.text
        for total in rollup.json()["totals"]:
            row = teams[(t["lead"]["id"], total["metric"])]
            assert (row["target"], row["achieved"], row["ratio"], row["quotas"]) == (
                total["target"],
                total["achieved"],
                total["ratio"],
                total["quotas"],
            )

    async def test_lead_filter_and_scope(
        self,
        client: AsyncClient,
        connection: AsyncConnection,
        app: FastAPI,
        settings: Settings,
    ) -> None:
        t = await self._team(client, connection)
        filtered = await client.get(
            QUOTAS, params={"period": "FY2026-Q3", "manager_id": t["lead"]["id"]}
        )
        assert filtered.status_code == 200, filtered.text
        body = filtered.json()
        assert {q["quota_id"] for q in body["quotas"]} == {
            t["anna_sales"]["id"],
            t["lead_calls"]["id"],
        }
        assert {r["lead_id"] for r in body["teams"]} == {t["lead"]["id"]}

        async with as_role(app, settings, Role.account_manager, t["anna"]["id"]) as http:
            own = (await http.get(QUOTAS, params={"period": "FY2026-Q3"})).json()
            assert [q["quota_id"] for q in own["quotas"]] == [t["anna_sales"]["id"]]
            assert own["teams"] == []
            outside = await http.get(
                QUOTAS, params={"period": "FY2026-Q3", "manager_id": t["lead"]["id"]}
            )
            assert_problem(outside, 404)
        async with as_role(app, settings, Role.sales_manager, t["boss"]["id"]) as http:
            team = (await http.get(QUOTAS, params={"period": "FY2026-Q3"})).json()
            assert {q["quota_id"] for q in team["quotas"]} == {
                t["anna_sales"]["id"],
                t["lead_calls"]["id"],
            }
            assert {r["lead_id"] for r in team["teams"]} == {
                t["boss"]["id"],
                t["lead"]["id"],
            }
            outside = await http.get(
                QUOTAS, params={"period": "FY2026-Q3", "manager_id": t["outsider"]["id"]}
            )
            assert_problem(outside, 404)

    async def test_running_quota_is_behind_pace(self, client: AsyncClient) -> None:
        anna = await create_manager(client)
        now = datetime.now(UTC)
        quarter = f"FY{now.year}-Q{(now.month - 1) // 3 + 1}"  # fiscal year = calendar year
        made = await client.post(
            "/v1/quotas",
            json={
                "manager_id": anna["id"],
                "metric": "interaction_count",
                "period": quarter,
                "target_count": 10,
            },
        )
        assert made.status_code == 201, made.text
        quota = made.json()
        body = (await client.get(QUOTAS, params={"period": quarter})).json()
        assert [(q["quota_id"], q["status"], q["ratio"]) for q in body["quotas"]] == [
            (quota["id"], "behind_pace", "0.0000")
        ]

    async def test_csv(self, client: AsyncClient, connection: AsyncConnection) -> None:
        t = await self._team(client, connection)
        rows = parse_csv(await client.get(QUOTAS, params={"period": "FY2026-Q3"}, headers=CSV))
        assert rows[0] == list(service.QUOTA_ATTAINMENT_COLUMNS)
        quota_rows = [r for r in rows[1:] if r[0] == "quota"]
        team_rows = [r for r in rows[1:] if r[0] == "team"]
        assert len(quota_rows) == 3
        assert len(team_rows) == 4
        anna = next(r for r in quota_rows if r[1] == t["anna_sales"]["id"])
        assert anna[3:] == [
            "C Anna",
            "sales_amount",
            "EUR",
            "2026-07-01T00:00:00Z",
            "2026-10-01T00:00:00Z",
            "1000.00",
            "700.00",
            "0.7000",
            "missed",
            "",
        ]

    async def test_bad_period_is_422(self, client: AsyncClient) -> None:
        assert_invalid(await client.get(QUOTAS, params={"period": "Q9"}), "query.period")
        assert_invalid(await client.get(QUOTAS), "query.period")


class TestComplaintsReport:
    async def _complaints(self, client: AsyncClient) -> dict[str, Any]:
        anna = await create_manager(client)
        bob = await create_manager(client)
        acme = await assigned_client(client, anna["id"])
        other = await assigned_client(client, bob["id"])
        # Received two days ago, never answered: past the critical targets (1 h / 24 h).
        late = await create_complaint(
            client, acme["id"], severity="critical", category="billing", received_at=ago(days=2)
        )
        await create_complaint(client, acme["id"], severity="low", category="product")
        answered = await create_complaint(
            client, acme["id"], severity="medium", category="service", received_at=ago(hours=3)
        )
        await move_complaint(client, answered["id"], "acknowledged")
        # Bob's: high, unanswered for 6 h (first response due after 4 h); low, unanswered
        # for 60 days (due after 48 h): both breached; the old one lies outside a 7-day range.
        await create_complaint(
            client, other["id"], severity="high", category="billing", received_at=ago(hours=6)
        )
        await create_complaint(
            client, other["id"], severity="low", category="other", received_at=ago(days=60)
        )
        return {"anna": anna, "bob": bob, "late": late}

    async def test_counts_and_breach_rate(self, client: AsyncClient) -> None:
        await self._complaints(client)
        since = (datetime.now(UTC) - timedelta(days=7)).date().isoformat()
        response = await client.get(COMPLAINTS, params={"from": since})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["total"] == 4
        assert body["breached"] == 2
        assert body["breach_rate"] == "0.5000"
        assert body["by_status"] == {
            "open": 3,
            "acknowledged": 1,
            "in_progress": 0,
            "waiting_on_client": 0,
            "resolved": 0,
            "closed": 0,
        }
        assert body["by_severity"] == {"low": 1, "medium": 1, "high": 1, "critical": 1}
        assert body["by_category"] == {
            "product": 1,
            "service": 1,
            "billing": 2,
            "delivery": 0,
            "communication": 0,
            "other": 0,
        }
        assert body["received_from"] is not None
        assert body["received_to"] is None
        breached = await client.get(
            "/v1/complaints", params={"breached": "true", "received_from": body["received_from"]}
        )
        assert len(breached.json()["items"]) == body["breached"]

        everything = (await client.get(COMPLAINTS)).json()
        assert (everything["total"], everything["breached"]) == (5, 3)
        assert everything["breach_rate"] == "0.6000"

    async def test_range_with_instants_and_dates(self, client: AsyncClient) -> None:
        await self._complaints(client)
        older = await client.get(COMPLAINTS, params={"from": ago(days=90), "to": ago(days=30)})
        assert older.status_code == 200, older.text
        assert (older.json()["total"], older.json()["breach_rate"]) == (1, "1.0000")
        today = datetime.now(UTC).date().isoformat()
        # A date as `to` is inclusive of that day.
        upto_today = (await client.get(COMPLAINTS, params={"to": today})).json()
        assert upto_today["total"] == 5
        empty = await client.get(COMPLAINTS, params={"from": "2020-01-01", "to": "2020-01-31"})
        assert empty.json()["total"] == 0
        assert empty.json()["breach_rate"] == "0.0000"
        assert_invalid(
            await client.get(COMPLAINTS, params={"from": "2026-02-01", "to": "2026-01-01"}),
            "query.to",
        )
        bad = assert_problem(await client.get(COMPLAINTS, params={"from": "yesterday"}), 422)
        assert [e["field"] for e in bad["errors"]] == ["query.from"]

    async def test_scoped_to_the_callers_clients(
        self, client: AsyncClient, app: FastAPI, settings: Settings
    ) -> None:
        made = await self._complaints(client)
        async with as_role(app, settings, Role.account_manager, made["anna"]["id"]) as http:
            body = (await http.get(COMPLAINTS)).json()
            assert (body["total"], body["breached"], body["breach_rate"]) == (3, 1, "0.3333")
        async with as_role(app, settings, Role.account_manager, made["bob"]["id"]) as http:
            body = (await http.get(COMPLAINTS)).json()
            assert (body["total"], body["breached"], body["breach_rate"]) == (2, 2, "1.0000")

    async def test_csv(self, client: AsyncClient) -> None:
        await self._complaints(client)
        rows = parse_csv(await client.get(COMPLAINTS, headers=CSV))
        assert rows[0] == list(service.COMPLAINTS_COLUMNS)
        assert ["status", "open", "4"] in rows
        assert ["severity", "critical", "1"] in rows
        assert ["category", "billing", "2"] in rows
        assert rows[-3:] == [
            ["total", "", "5"],
            ["breached", "", "3"],
            ["breach_rate", "", "0.6000"],
        ]
