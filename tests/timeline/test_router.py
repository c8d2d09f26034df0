"""``GET /v1/clients/{id}/timeline``: interactions, complaints and their transitions, and
assignment changes in time order, with a stable order for equal instants, keyset pages
in both directions, a kinds filter and a constant number of SQL statements per page.

Every test runs in the ``client`` fixture's rolled-back transaction.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tests.assertions import assert_invalid, assert_problem
from tests.factories import (
    create_assignment,
    create_client,
    create_complaint,
    create_interaction,
    create_manager,
    insert_client_history,
    move_complaint,
)

Event = tuple[str, str, datetime]  # (kind, id, at)


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def page(http: AsyncClient, client_id: str, **params: Any) -> dict[str, Any]:
    query = [(k, v) for k, v in params.items() if k != "kinds"]
    query += [("kinds", k) for k in params.get("kinds", [])]
    response = await http.get(f"/v1/clients/{client_id}/timeline", params=query)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def every_event(http: AsyncClient, client_id: str, **params: Any) -> list[dict[str, Any]]:
    """All pages, following ``next_cursor``."""
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        extra = {"cursor": cursor} if cursor else {}
        body = await page(http, client_id, **params, **extra)
        assert len(body["items"]) <= params.get("limit", 50)
        found += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return found


def keys(events: list[dict[str, Any]]) -> list[Event]:
    return [(e["kind"], e["id"], ts(e["at"])) for e in events]


class TestContent:
    async def test_merges_every_kind_in_time_order(self, client: AsyncClient) -> None:
        anna = await create_manager(client)
        bela = await create_manager(client)
        acme = await create_client(client)
        other = await create_client(client)
        first = await create_assignment(
            client,
            acme["id"],
            anna["id"],
            starts_at="2026-01-01T00:00:00Z",
            ends_at="2026-03-01T00:00:00Z",
        )
        second = await create_assignment(
            client, acme["id"], bela["id"], starts_at="2026-03-01T00:00:00Z"
        )
        later = await create_assignment(
            client, acme["id"], anna["id"], role="secondary", starts_at="2027-06-01T00:00:00Z"
        )
        call = await create_interaction(
            client,
            acme["id"],
            anna["id"],
            occurred_at="2026-02-10T09:00:00Z",
            subject="Kick-off",
            channel="video_call",
        )
        complaint = await create_complaint(
            client, acme["id"], title="Broken part", received_at="2026-04-01T08:00:00Z"
        )
        ack = await move_complaint(
            client, complaint["id"], "acknowledged", at="2026-04-01T08:30:00Z", note="On it"
        )
        work = await move_complaint(
            client, complaint["id"], "in_progress", at="2026-04-02T08:00:00Z"
        )
        meeting = await create_interaction(
            client, acme["id"], bela["id"], occurred_at="2026-05-01T10:00:00Z"
        )
        await create_interaction(client, other["id"], anna["id"])  # another client's

        events = (await page(client, acme["id"], limit=500))["items"]
        assert keys(events) == [
            ("assignment_started", first["id"], ts("2026-01-01T00:00:00Z")),
            ("interaction", call["id"], ts("2026-02-10T09:00:00Z")),
            ("assignment_ended", first["id"], ts("2026-03-01T00:00:00Z")),
            ("assignment_started", second["id"], ts("2026-03-01T00:00:00Z")),
            ("complaint_received", complaint["id"], ts("2026-04-01T08:00:00Z")),
            ("complaint_transition", ack["id"], ts("2026-04-01T08:30:00Z")),
            ("complaint_transition", work["id"], ts("2026-04-02T08:00:00Z")),
            ("interaction", meeting["id"], ts("2026-05-01T10:00:00Z")),
        ]
        assert later["id"] not in {e["id"] for e in events}  # not happened yet
        by_id = {(e["kind"], e["id"]): e for e in events}
        talk = by_id[("interaction", call["id"])]
        assert talk["summary"] == "Kick-off"
        assert talk["data"]["manager_id"] == anna["id"]
        assert talk["data"]["channel"] == "video_call"
        received = by_id[("complaint_received", complaint["id"])]
        assert received["summary"] == "Broken part"
        assert received["data"]["severity"] == "critical"
        moved = by_id[("complaint_transition", ack["id"])]
        assert moved["data"]["complaint_id"] == complaint["id"]
        assert (moved["data"]["from_status"], moved["data"]["to_status"]) == (
            "open",
            "acknowledged",
        )
        assert moved["data"]["actor"] == "test-admin"
        assert moved["data"]["note"] == "On it"
        assert "open" in moved["summary"]
        assert "acknowledged" in moved["summary"]
        assert by_id[("assignment_ended", first["id"])]["data"]["manager_id"] == anna["id"]

    async def test_kinds_filter(self, client: AsyncClient) -> None:
        anna = await create_manager(client)
        acme = await create_client(client)
        await create_assignment(client, acme["id"], anna["id"], starts_at="2026-01-01T00:00:00Z")
        call = await create_interaction(
            client, acme["id"], anna["id"], occurred_at="2026-02-01T00:00:00Z"
        )
        complaint = await create_complaint(client, acme["id"], received_at="2026-03-01T00:00:00Z")
        await move_complaint(client, complaint["id"], "acknowledged")
        only = await page(client, acme["id"], kinds=["interaction", "complaint_received"])
        assert [(e["kind"], e["id"]) for e in only["items"]] == [
            ("interaction", call["id"]),
            ("complaint_received", complaint["id"]),
        ]
        everything = await page(client, acme["id"])
        assert len(everything["items"]) == 4

    @pytest.mark.parametrize(
        "kinds",
        [
            ["interaction"],
            ["complaint_received"],
            ["complaint_transition"],
            ["assignment_started"],
            ["assignment_ended"],
            ["complaint_transition", "assignment_started"],
        ],
        ids=lambda kinds: "+".join(kinds),
    )
    async def test_any_subset_of_kinds(self, client: AsyncClient, kinds: list[str]) -> None:
        anna = await create_manager(client)
        acme = await create_client(client)
        await create_assignment(
            client,
            acme["id"],
            anna["id"],
            starts_at="2026-01-01T00:00:00Z",
            ends_at="2026-02-01T00:00:00Z",
        )
        await create_interaction(client, acme["id"], anna["id"], occurred_at="2026-01-10T00:00:00Z")
        complaint = await create_complaint(client, acme["id"], received_at="2026-01-20T00:00:00Z")
        await move_complaint(client, complaint["id"], "acknowledged", at="2026-01-21T00:00:00Z")
        everything = (await page(client, acme["id"]))["items"]
        assert len(everything) == 5
        only = await page(client, acme["id"], kinds=kinds)
        assert only["items"] == [e for e in everything if e["kind"] in kinds]

    async def test_errors(self, client: AsyncClient) -> None:
        acme = await create_client(client)
        url = f"/v1/clients/{acme['id']}/timeline"
        assert_invalid(await client.get(url, params={"order": "sideways"}), "query.order")
        r = await client.get(url, params={"kinds": "gossip"})
        assert_problem(r, 422)
        assert_invalid(await client.get(url, params={"cursor": "garbage"}), "query.cursor")
        assert_invalid(await client.get(url, params={"limit": 0}), "query.limit")
        missing = "/v1/clients/00000000-0000-0000-0000-000000000003/timeline"
        assert_problem(await client.get(missing), 404)
        empty = await page(client, acme["id"])
        assert empty == {"items": [], "next_cursor": None}


class TestOrder:
    async def _same_instant(self, http: AsyncClient) -> tuple[str, int]:
        """A client with 10 events at one instant and 2 around it; returns its id and
        the number of events."""
        anna = await create_manager(http)
        bela = await create_manager(http)
        acme = await create_client(http)
        at = "2026-09-01T10:00:00Z"
        await create_assignment(http, acme["id"], anna["id"], starts_at=at)
        await create_assignment(http, acme["id"], bela["id"], role="secondary", starts_at=at)
        for n in range(3):
            await create_interaction(http, acme["id"], anna["id"], occurred_at=at, subject=f"#{n}")
        for _ in range(2):
            complaint = await create_complaint(http, acme["id"], received_at=at)
            await move_complaint(http, complaint["id"], "acknowledged", at=at)
            await move_complaint(http, complaint["id"], "in_progress", at=at)
        await create_interaction(
            http, acme["id"], anna["id"], occurred_at="2026-09-01T09:59:59.999999Z"
        )
        await create_interaction(
            http, acme["id"], anna["id"], occurred_at="2026-09-01T10:00:00.000001Z"
        )
        return acme["id"], 2 + 3 + 2 * 3 + 2

    async def test_equal_timestamps_are_stable_across_calls_and_pages(
        self, client: AsyncClient
    ) -> None:
        client_id, total = await self._same_instant(client)
        asc = (await page(client, client_id, limit=500))["items"]
        assert len(asc) == total
        assert (await page(client, client_id, limit=500))["items"] == asc
        assert (await page(client, client_id, limit=500))["items"] == asc
        # Ties are broken by kind, then id: a total order.
        order = [(ts(e["at"]), e["kind"], e["id"]) for e in asc]
        assert order == sorted(order)
        assert len(set(order)) == total
        for limit in (1, 2, 3, 5):
            paged = await every_event(client, client_id, limit=limit)
            assert paged == asc, limit

        desc = (await page(client, client_id, limit=500, order="desc"))["items"]
        assert desc == asc[::-1]
        for limit in (1, 4):
            assert await every_event(client, client_id, limit=limit, order="desc") == desc

    async def test_kinds_filter_pages_stably(self, client: AsyncClient) -> None:
        client_id, _ = await self._same_instant(client)
        kinds = ["complaint_transition", "interaction"]
        full = (await page(client, client_id, limit=500, kinds=kinds))["items"]
        assert {e["kind"] for e in full} == set(kinds)
        assert len(full) == 4 + 5
        assert await every_event(client, client_id, limit=1, kinds=kinds) == full
        desc = await every_event(client, client_id, limit=2, kinds=kinds, order="desc")
        assert desc == full[::-1]


@contextmanager
def count_statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """Every SQL statement sent through ``engine`` while inside the block."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


def queries(statements: list[str]) -> list[str]:
    """Statements other than the SAVEPOINT bookkeeping of the test's transaction."""
    return [s for s in statements if not s.lstrip().upper().startswith(("SAVEPOINT", "RELEASE"))]


class TestStatementCount:
    async def test_constant_per_page_small_vs_large(
        self, client: AsyncClient, engine: AsyncEngine, connection: AsyncConnection
    ) -> None:
        anna = await create_manager(client)
        small = await create_client(client)
        large = await create_client(client)
        await create_assignment(client, small["id"], anna["id"], starts_at="2026-01-01T00:00:00Z")
        await create_assignment(client, large["id"], anna["id"], starts_at="2024-01-01T00:00:00Z")
        await create_interaction(client, small["id"], anna["id"])
        await insert_client_history(
            connection, small["id"], anna["id"], interactions=2, complaints=1
        )
        await insert_client_history(
            connection, large["id"], anna["id"], interactions=1500, complaints=500
        )

        async def statements_for(client_id: str, **params: Any) -> tuple[int, ...]:
            """(all statements, app queries) for a first page and for a page reached
            with a cursor, and the first page's size."""
            cursor = (await page(client, client_id, limit=1, **params))["next_cursor"]
            assert cursor is not None
            with count_statements(engine) as first:
                body = await page(client, client_id, limit=50, **params)
            with count_statements(engine) as later:
                await page(client, client_id, limit=50, cursor=cursor, **params)
            counts = (len(first), len(queries(first)), len(later), len(queries(later)))
            return (*counts, len(body["items"]))

        results = {
            "small": await statements_for(small["id"]),
            "large": await statements_for(large["id"]),
            "small desc": await statements_for(small["id"], order="desc"),
            "large desc": await statements_for(large["id"], order="desc"),
            "large kinds": await statements_for(
                large["id"], kinds=["interaction", "complaint_transition"]
            ),
        }
        assert results["small"][-1] == 6  # every event of the small client on one page
        assert results["large"][-1] == 50
        statements = {r[0] for r in results.values()} | {r[2] for r in results.values()}
        app_queries = {r[1] for r in results.values()} | {r[3] for r in results.values()}
        assert len(statements) == 1, results  # the same with the savepoints counted
        # One to check the client exists, one UNION ALL for the page.
        assert app_queries == {2}, results

        with count_statements(engine) as cursor_page:
            first = await page(client, large["id"], limit=50)
            await page(client, large["id"], limit=50, cursor=first["next_cursor"])
        per_page = len(queries(cursor_page)) / 2
        assert per_page == 2

    async def test_large_history_pages_completely(
        self, client: AsyncClient, connection: AsyncConnection
    ) -> None:
        anna = await create_manager(client)
        acme = await create_client(client)
        await insert_client_history(
            connection, acme["id"], anna["id"], interactions=300, complaints=100
        )
        asc = await every_event(client, acme["id"], limit=500)
        assert len(asc) == 300 + 100 + 100  # interactions, complaints, their acknowledgements
        assert await every_event(client, acme["id"], limit=37) == asc
        assert await every_event(client, acme["id"], limit=37, order="desc") == asc[::-1]
        instants = [ts(e["at"]) for e in asc]
        assert instants == sorted(instants)
        assert instants[0] - datetime(2025, 1, 1, tzinfo=UTC) == timedelta(hours=1)
