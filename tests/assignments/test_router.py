"""HTTP behaviour of assignments, handovers, absences, responsibility and books of business.

Instants that must be "in the past" or "in the future" for a rule to apply are taken
relative to now; the rest are fixed. Every test runs in the ``client`` fixture's rolled
back transaction except the concurrent handovers, which commit for real (``live_client``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient, Response
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, async_sessionmaker

from app.config import Settings
from app.core.auth import Role
from app.main import create_app
from tests.assertions import assert_invalid, assert_problem, error_fields
from tests.conftest import make_token
from tests.factories import create_assignment, create_client, create_manager

US = timedelta(microseconds=1)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def iso(value: datetime) -> str:
    return value.isoformat()


def ts(value: str) -> datetime:
    """An instant from a response (RFC 3339, ``Z`` or an offset)."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def now() -> datetime:
    return datetime.now(UTC)


def day_start(value: datetime) -> datetime:
    return value.replace(hour=0, minute=0, second=0, microsecond=0)


async def ids_of(http: AsyncClient, **params: Any) -> set[str]:
    response = await http.get("/v1/assignments", params={"limit": 500, **params})
    assert response.status_code == 200, response.text
    return {a["id"] for a in response.json()["items"]}


async def responsible(http: AsyncClient, client_id: str, at: datetime | None = None) -> Response:
    params = {"at": iso(at)} if at is not None else {}
    return await http.get(f"/v1/clients/{client_id}/responsible", params=params)


async def responsible_manager(http: AsyncClient, client_id: str, at: datetime) -> str | None:
    """The responsible manager's id at ``at``, or ``None`` when unassigned."""
    response = await responsible(http, client_id, at)
    if response.status_code == 404:
        assert response.json()["reason"] == "unassigned", response.text
        return None
    assert response.status_code == 200, response.text
    return str(response.json()["manager_id"])


async def book(http: AsyncClient, manager_id: str, **params: Any) -> list[dict[str, Any]]:
    """Every entry of a manager's book (all pages)."""
    entries: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = {"limit": 500, **params}
        if cursor:
            query["cursor"] = cursor
        response = await http.get(f"/v1/managers/{manager_id}/book", params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        entries.extend(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return entries


async def book_clients(http: AsyncClient, manager_id: str, **params: Any) -> set[str]:
    return {e["client"]["id"] for e in await book(http, manager_id, **params)}


async def archive(http: AsyncClient, client_id: str) -> None:
    response = await http.post(f"/v1/clients/{client_id}/archive")
    assert response.status_code == 200, response.text


def assert_names(body: dict[str, Any], assignment_id: str) -> None:
    """A 409 body names the conflicting assignment (in ``detail`` and the list)."""
    assert assignment_id in body["detail"], body
    assert assignment_id in {a["id"] for a in body["conflicting_assignments"]}, body


# Overlap shapes: (existing start, existing end, new start, new end) in days of Jan 2026,
# None = open-ended. Day 20 minus one microsecond is written as 19.999.
D = utc(2026, 1, 1)


def day(n: float | None) -> str | None:
    if n is None:
        return None
    if n == 19.999:
        return iso(D + timedelta(days=19) - US)
    return iso(D + timedelta(days=n))


OVERLAPS = {
    "same_range": (10, 20, 10, 20),
    "same_start": (10, 20, 10, 15),
    "same_end": (10, 20, 15, 20),
    "contained": (10, 20, 12, 18),
    "containing": (10, 20, 5, 25),
    "overlaps_start": (10, 20, 5, 15),
    "overlaps_end": (10, 20, 15, 25),
    "by_one_microsecond": (10, 20, 19.999, 25),
    "open_existing_vs_bounded_inside": (10, None, 15, 20),
    "open_existing_vs_bounded_across_start": (10, None, 5, 11),
    "bounded_existing_vs_open_new_inside": (10, 20, 15, None),
    "bounded_existing_vs_open_new_before": (10, 20, 5, None),
    "both_open": (10, None, 15, None),
    "both_open_same_start": (10, None, 10, None),
}
TOUCHING = {
    "new_right_after": (10, 20, 20, 25),
    "new_right_before": (10, 20, 5, 10),
    "open_new_right_after": (10, 20, 20, None),
    "bounded_new_before_open": (10, None, 5, 10),
}


class TestCreateAssignment:
    async def test_answers_201_with_etag_location_and_audit_fields(
        self, client: AsyncClient
    ) -> None:
        manager = await create_manager(client)
        acme = await create_client(client)
        before = now()
        response = await client.post(
            "/v1/assignments",
            json={
                "client_id": acme["id"],
                "manager_id": manager["id"],
                "role": "primary",
                "reason": "  new account  ",
            },
        )
        assert response.status_code == 201, response.text
        body = response.json()
        assert response.headers["ETag"] == '"1"'
        assert response.headers["Location"] == f"/v1/assignments/{body['id']}"
        assert body["client_id"] == acme["id"]
        assert body["manager_id"] == manager["id"]
        assert body["role"] == "primary"
        assert body["ends_at"] is None
        assert body["reason"] == "new account"
        assert body["absence_id"] is None
        assert body["version"] == 1
        assert body["created_by"] == body["updated_by"] == "test-admin"
        started = ts(body["starts_at"])
        assert before - timedelta(seconds=1) <= started <= now() + timedelta(seconds=1)
        assert started.utcoffset() == timedelta(0)

    @pytest.mark.parametrize("role", ["primary", "cover"])
    @pytest.mark.parametrize("shape", OVERLAPS.keys())
    async def test_overlapping_same_role_is_409_naming_it(
        self, client: AsyncClient, role: str, shape: str
    ) -> None:
        old_start, old_end, new_start, new_end = OVERLAPS[shape]
        first, second = await create_manager(client), await create_manager(client)
        acme = await create_client(client)
        existing = await create_assignment(
            client, acme["id"], first["id"], role, day(old_start), day(old_end)
        )
        body: dict[str, Any] = {
            "client_id": acme["id"],
            "manager_id": second["id"],
            "role": role,
            "starts_at": day(new_start),
            "ends_at": day(new_end),
        }
        response = await client.post("/v1/assignments", json=body)
        problem = assert_problem(response, 409)
        assert_names(problem, existing["id"])
        assert await ids_of(client, client_id=acme["id"]) == {existing["id"]}

    @pytest.mark.parametrize("role", ["primary", "cover"])
    @pytest.mark.parametrize("shape", TOUCHING.keys())
    async def test_touching_ranges_are_allowed(
        self, client: AsyncClient, role: str, shape: str
    ) -> None:
        old_start, old_end, new_start, new_end = TOUCHING[shape]
        first, second = await create_manager(client), await create_manager(client)
        acme = await create_client(client)
        existing = await create_assignment(
            client, acme["id"], first["id"], role, day(old_start), day(old_end)
        )
        created = await create_assignment(
            client, acme["id"], second["id"], role, day(new_start), day(new_end)
        )
        assert await ids_of(client, client_id=acme["id"]) == {existing["id"], created["id"]}

    async def test_secondaries_may_overlap_anything(self, client: AsyncClient) -> None:
        anna, bela, cili = [await create_manager(client) for _ in range(3)]
        acme = await create_client(client)
        await create_assignment(client, acme["id"], anna["id"], "primary", day(1))
        await create_assignment(client, acme["id"], bela["id"], "cover", day(5), day(9))
        await create_assignment(client, acme["id"], bela["id"], "secondary", day(1))
        await create_assignment(client, acme["id"], cili["id"], "secondary", day(2), day(30))
        await create_assignment(client, acme["id"], anna["id"], "secondary", day(3))

    async def test_a_cover_and_a_primary_of_different_managers_may_overlap(
        self, client: AsyncClient
    ) -> None:
        anna, bela = await create_manager(client), await create_manager(client)
        acme = await create_client(client)
        await create_assignment(client, acme["id"], anna["id"], "primary", day(1))
        await create_assignment(client, acme["id"], bela["id"], "cover", day(5), day(9))

    async def test_cover_by_the_primary_manager_is_409_naming_the_primary(
        self, client: AsyncClient
    ) -> None:
        anna = await create_manager(client)
        acme = await create_client(client)
        primary = await create_assignment(client, acme["id"], anna["id"], "primary", day(1))
        response = await client.post(
            "/v1/assignments",
            json={
                "client_id": acme["id"],
                "manager_id": anna["id"],
                "role": "cover",
                "starts_at": day(5),
                "ends_at": day(9),
            },
        )
        assert_names(assert_problem(response, 409), primary["id"])

    async def test_primary_for_the_covering_manager_is_409_naming_the_cover(
        self, client: AsyncClient
    ) -> None:
        anna = await create_manager(client)
        acme = await create_client(client)
        cover = await create_assignment(client, acme["id"], anna["id"], "cover", day(5), day(9))
        response = await client.post(
            "/v1/assignments",
            json={
                "client_id": acme["id"],
                "manager_id": anna["id"],
                "role": "primary",
                "starts_at": day(8),
            },
        )
        assert_names(assert_problem(response, 409), cover["id"])

    async def test_the_same_manager_may_cover_after_their_primary_ends(
        self, client: AsyncClient
    ) -> None:
        anna = await create_manager(client)
        acme = await create_client(client)
        await create_assignment(client, acme["id"], anna["id"], "primary", day(1), day(5))
        await create_assignment(client, acme["id"], anna["id"], "cover", day(5), day(9))

    @pytest.mark.parametrize("end", [10, 9])
    async def test_end_not_after_start_is_422(self, client: AsyncClient, end: int) -> None:
        anna = await create_manager(client)
        acme = await create_client(client)
        response = await client.post(
            "/v1/assignments",
            json={
                "client_id": acme["id"],
                "manager_id": anna["id"],
                "role": "primary",
                "starts_at": day(10),
                "ends_at": day(end),
            },
        )
        assert_problem(response, 422)
        assert await ids_of(client, client_id=acme["id"]) == set()

    async def test_end_before_the_default_start_now_is_422(self, client: AsyncClient) -> None:
        anna = await create_manager(client)
        acme = await create_client(client)
        response = await client.post(
            "/v1/assignments",
            json={
                "client_id": acme["id"],
                "manager_id": anna["id"],
                "role": "primary",
                "ends_at": iso(now() - timedelta(days=1)),
            },
        )
        assert_invalid(response, "body.ends_at")

    async def test_inactive_manager_is_422(self, client: AsyncClient) -> None:
        gone = await create_manager(client, active=False)
        acme = await create_client(client)
        response = await client.post(
            "/v1/assignments",
            json={"client_id": acme["id"], "manager_id": gone["id"], "role": "primary"},
        )
        body = assert_invalid(response, "body.manager_id")
        assert "not active" in body["detail"]
        assert await ids_of(client, client_id=acme["id"]) == set()

    async def test_deactivated_manager_is_422(self, client: AsyncClient) -> None:
        anna = await create_manager(client)
        left = await client.patch(f"/v1/managers/{anna['id']}", json={"active": False})
        assert left.status_code == 200, left.text
        acme = await create_client(client)
        response = await client.post(
            "/v1/assignments",
            json={"client_id": acme["id"], "manager_id": anna["id"], "role": "secondary"},
        )
        assert_invalid(response, "body.manager_id")

    async def test_archived_client_is_422(self, client: AsyncClient) -> None:
        anna = await create_manager(client)
        acme = await create_client(client)
        await archive(client, acme["id"])
        response = await client.post(
            "/v1/assignments",
            json={"client_id": acme["id"], "manager_id": anna["id"], "role": "primary"},
        )
        body = assert_invalid(response, "body.client_id")
        assert "archived" in body["detail"]
        assert await ids_of(client, client_id=acme["id"]) == set()

    async def test_unknown_manager_or_client_is_422(self, client: AsyncClient) -> None:
        anna = await create_manager(client)
        acme = await create_client(client)
        unknown = "00000000-0000-4000-8000-000000000000"
        no_manager = await client.post(
            "/v1/assignments",
            json={"client_id": acme["id"], "manager_id": unknown, "role": "primary"},
        )
        assert_invalid(no_manager, "body.manager_id")
        no_client = await client.post(
            "/v1/assignments",
            json={"client_id": unknown, "manager_id": anna["id"], "role": "primary"},
        )
        assert_invalid(no_client, "body.client_id")

    @pytest.mark.parametrize(
        ("fields", "field"),
        [
            ({"role": "owner"}, "body.role"),
            ({"starts_at": "2026-01-01T00:00:00"}, "body.starts_at"),
            ({"ends_at": "2026-13-01T00:00:00Z"}, "body.ends_at"),
            ({"reason": ""}, "body.reason"),
            ({"reason": "x" * 501}, "body.reason"),
            ({"client_id": "nope"}, "body.client_id"),
            ({"absence_id": "00000000-0000-4000-8000-000000000000"}, "body.absence_id"),
        ],
    )
    async def test_invalid_body_is_422(
        self, client: AsyncClient, fields: dict[str, Any], field: str
    ) -> None:
        anna = await create_manager(client)
        acme = await create_client(client)
        body = {"client_id": acme["id"], "manager_id": anna["id"], "role": "primary", **fields}
        assert_invalid(await client.post("/v1/assignments", json=body), field)

    async def test_viewer_cannot_create(self, client: AsyncClient, settings: Settings) -> None:
        anna = await create_manager(client)
        acme = await create_client(client)
        response = await client.post(
            "/v1/assignments",
            json={"client_id": acme["id"], "manager_id": anna["id"], "role": "primary"},
            headers={"Authorization": f"Bearer {make_token(settings, Role.viewer)}"},
        )
        assert_problem(response, 403)


class TestGetAssignment:
    async def test_returns_it_with_etag(self, client: AsyncClient) -> None:
        anna = await create_manager(client)
        acme = await create_client(client)
        created = await create_assignment(client, acme["id"], anna["id"], "primary", day(1))
        response = await client.get(f"/v1/assignments/{created['id']}")
        assert response.status_code == 200, response.text
        assert response.headers["ETag"] == '"1"'
        assert response.json() == created

    async def test_unknown_is_404(self, client: AsyncClient) -> None:
        response = await client.get("/v1/assignments/00000000-0000-4000-8000-000000000000")
        assert_problem(response, 404)

    async def test_malformed_id_is_422(self, client: AsyncClient) -> None:
        assert_problem(await client.get("/v1/assignments/not-a-uuid"), 422)


class TestListAssignments:
    async def test_filters_combine(self, client: AsyncClient) -> None:
        anna, bela, xena = [await create_manager(client) for _ in range(3)]
        one, two = await create_client(client), await create_client(client)
        p1 = await create_assignment(client, one["id"], anna["id"], "primary", day(0), day(31))
        p2 = await create_assignment(client, one["id"], bela["id"], "primary", day(31))
        s1 = await create_assignment(client, one["id"], xena["id"], "secondary", day(14), day(59))
        p3 = await create_assignment(client, two["id"], anna["id"], "primary", day(0))
        cv = await create_assignment(client, two["id"], bela["id"], "cover", day(9), day(19))

        assert await ids_of(client, client_id=one["id"]) == {p1["id"], p2["id"], s1["id"]}
        assert await ids_of(client, manager_id=anna["id"]) == {p1["id"], p3["id"]}
        assert await ids_of(client, manager_id=bela["id"], role="cover") == {cv["id"]}
        assert await ids_of(client, manager_id=bela["id"], role="primary") == {p2["id"]}
        assert await ids_of(client, client_id=one["id"], role="secondary") == {s1["id"]}
        # active_at is half-open: p1 ends, p2 starts at Feb 1st.
        feb = utc(2026, 2, 1)
        assert await ids_of(client, client_id=one["id"], active_at=iso(feb)) == {
            p2["id"],
            s1["id"],
        }
        assert await ids_of(client, client_id=one["id"], active_at=iso(feb - US)) == {
            p1["id"],
            s1["id"],
        }
        assert await ids_of(client, client_id=one["id"], active_at=iso(D - US)) == (set())
        assert await ids_of(client, manager_id=bela["id"], active_at=day(15)) == {cv["id"]}
        assert await ids_of(client, manager_id=bela["id"], active_at=day(19)) == set()
        assert await ids_of(
            client, client_id=two["id"], role="primary", active_at="2030-01-01T00:00:00+05:00"
        ) == {p3["id"]}

    async def test_pages_with_a_cursor(self, client: AsyncClient) -> None:
        anna = await create_manager(client)
        acme = await create_client(client)
        created = {
            (await create_assignment(client, acme["id"], anna["id"], "secondary", day(n)))["id"]
            for n in range(5)
        }
        seen: list[str] = []
        cursor: str | None = None
        for _ in range(5):
            params: dict[str, Any] = {"client_id": acme["id"], "limit": 2}
            if cursor:
                params["cursor"] = cursor
            response = await client.get("/v1/assignments", params=params)
            assert response.status_code == 200, response.text
            page = response.json()
            assert len(page["items"]) <= 2
            seen.extend(a["id"] for a in page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert sorted(seen) == sorted(created)

    @pytest.mark.parametrize(
        ("params", "field"),
        [
            ({"active_at": "2026-01-01T00:00:00"}, "query.active_at"),
            ({"active_at": "yesterday"}, "query.active_at"),
            ({"role": "boss"}, "query.role"),
            ({"client_id": "x"}, "query.client_id"),
            ({"limit": 0}, "query.limit"),
            ({"cursor": "garbage"}, "query.cursor"),
        ],
    )
    async def test_invalid_filters_are_422(
        self, client: AsyncClient, params: dict[str, Any], field: str
    ) -> None:
        assert_invalid(await client.get("/v1/assignments", params=params), field)


class TestEndAssignment:
    async def _started(self, client: AsyncClient, **fields: Any) -> dict[str, Any]:
        anna = await create_manager(client)
        acme = await create_client(client)
        return await create_assignment(
            client, acme["id"], anna["id"], "primary", iso(now() - timedelta(days=10)), **fields
        )

    async def test_ends_an_open_assignment(self, client: AsyncClient) -> None:
        row = await self._started(client)
        end = now() + timedelta(days=30)
        response = await client.patch(
            f"/v1/assignments/{row['id']}",
            json={"ends_at": iso(end), "reason": "moving on"},
            headers={"If-Match": '"1"'},
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert ts(body["ends_at"]) == end
        assert body["reason"] == "moving on"
        assert body["version"] == 2
        assert response.headers["ETag"] == '"2"'
        assert body["starts_at"] == row["starts_at"]
        assert await responsible_manager(client, row["client_id"], end - US) == row["manager_id"]
        assert await responsible_manager(client, row["client_id"], end) is None

    async def test_ending_now_is_allowed(self, client: AsyncClient) -> None:
        row = await self._started(client)
        response = await client.patch(f"/v1/assignments/{row['id']}", json={"ends_at": iso(now())})
        assert response.status_code == 200, response.text
        assert await responsible_manager(client, row["client_id"], now()) is None

    async def test_stale_if_match_is_412(self, client: AsyncClient) -> None:
        row = await self._started(client)
        first = await client.patch(
            f"/v1/assignments/{row['id']}",
            json={"ends_at": iso(now() + timedelta(days=30))},
            headers={"If-Match": '"1"'},
        )
        assert first.status_code == 200, first.text
        stale = await client.patch(
            f"/v1/assignments/{row['id']}",
            json={"ends_at": iso(now() + timedelta(days=60))},
            headers={"If-Match": '"1"'},
        )
        assert_problem(stale, 412)
        assert stale.headers["ETag"] == '"2"'
        current = await client.get(f"/v1/assignments/{row['id']}")
        assert current.json()["ends_at"] == first.json()["ends_at"]

    async def test_ending_in_the_past_is_422(self, client: AsyncClient) -> None:
        row = await self._started(client)
        response = await client.patch(
            f"/v1/assignments/{row['id']}", json={"ends_at": iso(now() - timedelta(days=1))}
        )
        body = assert_invalid(response, "body.ends_at")
        assert "past" in body["detail"]
        current = await client.get(f"/v1/assignments/{row['id']}")
        assert current.json()["ends_at"] is None
        assert current.json()["version"] == 1

    async def test_ending_before_the_start_is_422(self, client: AsyncClient) -> None:
        anna = await create_manager(client)
        acme = await create_client(client)
        start = now() + timedelta(days=10)
        row = await create_assignment(client, acme["id"], anna["id"], "primary", iso(start))
        response = await client.patch(
            f"/v1/assignments/{row['id']}", json={"ends_at": iso(start - timedelta(days=1))}
        )
        assert_invalid(response, "body.ends_at")

    @pytest.mark.parametrize(
        "change",
        [
            {"ends_at": "2099-01-01T00:00:00Z"},
            {"ends_at": None},
            {"ends_at": "2025-06-02T00:00:00Z"},
            {"reason": "rewritten"},
        ],
        ids=["later_end", "reopen", "same_past", "reason_only"],
    )
    async def test_changing_an_ended_assignment_is_409(
        self, client: AsyncClient, change: dict[str, Any]
    ) -> None:
        anna = await create_manager(client)
        acme = await create_client(client)
        row = await create_assignment(
            client,
            acme["id"],
            anna["id"],
            "primary",
            "2025-01-01T00:00:00Z",
            "2025-06-01T00:00:00Z",
            reason="original",
        )
        response = await client.patch(f"/v1/assignments/{row['id']}", json=change)
        assert_problem(response, 409)
        current = (await client.get(f"/v1/assignments/{row['id']}")).json()
        assert current == row

    async def test_extending_over_the_next_primary_is_409_naming_it(
        self, client: AsyncClient
    ) -> None:
        anna, bela = await create_manager(client), await create_manager(client)
        acme = await create_client(client)
        switch = now() + timedelta(days=10)
        row = await create_assignment(
            client, acme["id"], anna["id"], "primary", iso(now() - timedelta(days=10)), iso(switch)
        )
        nxt = await create_assignment(client, acme["id"], bela["id"], "primary", iso(switch))
        for end in (None, iso(switch + timedelta(days=1))):
            response = await client.patch(f"/v1/assignments/{row['id']}", json={"ends_at": end})
            assert_names(assert_problem(response, 409), nxt["id"])
        shorter = await client.patch(
            f"/v1/assignments/{row['id']}", json={"ends_at": iso(switch - timedelta(days=1))}
        )
        assert shorter.status_code == 200, shorter.text

    async def test_reopening_without_conflict_is_allowed(self, client: AsyncClient) -> None:
        row = await self._started(client, ends_at=iso(now() + timedelta(days=5)))
        response = await client.patch(f"/v1/assignments/{row['id']}", json={"ends_at": None})
        assert response.status_code == 200, response.text
        assert response.json()["ends_at"] is None

    async def test_unknown_is_404(self, client: AsyncClient) -> None:
        response = await client.patch(
            "/v1/assignments/00000000-0000-4000-8000-000000000000", json={"ends_at": None}
        )
        assert_problem(response, 404)

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"role": "cover"}, "body.role"),
            ({"starts_at": "2026-01-01T00:00:00Z"}, "body.starts_at"),
        ],
    )
    async def test_only_end_and_reason_can_change(
        self, client: AsyncClient, body: dict[str, Any], field: str
    ) -> None:
        row = await self._started(client)
        assert_invalid(await client.patch(f"/v1/assignments/{row['id']}", json=body), field)


class TestDeleteAssignment:
    async def test_started_assignment_is_409(self, client: AsyncClient) -> None:
        anna = await create_manager(client)
        acme = await create_client(client)
        row = await create_assignment(
            client, acme["id"], anna["id"], "primary", iso(now() - timedelta(minutes=1))
        )
        assert_problem(await client.delete(f"/v1/assignments/{row['id']}"), 409)
        assert (await client.get(f"/v1/assignments/{row['id']}")).status_code == 200

    async def test_ended_assignment_is_409(self, client: AsyncClient) -> None:
        anna = await create_manager(client)
        acme = await create_client(client)
        row = await create_assignment(client, acme["id"], anna["id"], "primary", day(0), day(10))
        assert_problem(await client.delete(f"/v1/assignments/{row['id']}"), 409)

    async def test_future_assignment_is_deleted(self, client: AsyncClient) -> None:
        anna = await create_manager(client)
        acme = await create_client(client)
        row = await create_assignment(
            client, acme["id"], anna["id"], "primary", iso(now() + timedelta(days=1))
        )
        response = await client.delete(f"/v1/assignments/{row['id']}", headers={"If-Match": '"1"'})
        assert response.status_code == 204, response.text
        assert response.content == b""
        assert_problem(await client.get(f"/v1/assignments/{row['id']}"), 404)
        assert await ids_of(client, client_id=acme["id"]) == set()

    async def test_stale_if_match_is_412(self, client: AsyncClient) -> None:
        anna = await create_manager(client)
        acme = await create_client(client)
        row = await create_assignment(
            client, acme["id"], anna["id"], "primary", iso(now() + timedelta(days=1))
        )
        response = await client.delete(f"/v1/assignments/{row['id']}", headers={"If-Match": '"7"'})
        assert_problem(response, 412)
        assert (await client.get(f"/v1/assignments/{row['id']}")).status_code == 200

    async def test_unknown_is_404(self, client: AsyncClient) -> None:
        response = await client.delete("/v1/assignments/00000000-0000-4000-8000-000000000000")
        assert_problem(response, 404)


class TestHandOverClient:
    async def test_ends_the_primary_and_starts_the_new_one_at_the_same_instant(
        self, client: AsyncClient
    ) -> None:
        anna, bela = await create_manager(client), await create_manager(client)
        acme = await create_client(client)
        original = await create_assignment(
            client, acme["id"], anna["id"], "primary", iso(now() - timedelta(days=30))
        )
        at = now() + timedelta(hours=1)
        response = await client.post(
            f"/v1/clients/{acme['id']}/handover",
            json={"to_manager_id": bela["id"], "at": iso(at), "reason": "reorg"},
        )
        assert response.status_code == 201, response.text
        body = response.json()
        ended, started = body["ended"], body["started"]
        assert ended["id"] == original["id"]
        assert ended["starts_at"] == original["starts_at"]
        assert ts(ended["ends_at"]) == at
        assert ended["version"] == 2
        assert started["manager_id"] == bela["id"]
        assert started["role"] == "primary"
        assert ts(started["starts_at"]) == at
        assert started["ends_at"] is None
        assert started["reason"] == "reorg"
        assert body["id"] == started["id"]
        assert body["version"] == started["version"]
        assert ts(body["at"]) == at
        assert response.headers["Location"] == f"/v1/assignments/{started['id']}"
        assert await responsible_manager(client, acme["id"], at - US) == anna["id"]
        assert await responsible_manager(client, acme["id"], at) == bela["id"]
        # History is kept: the old row is still there, only ended.
        assert await ids_of(client, client_id=acme["id"]) == {original["id"], started["id"]}

    async def test_keeps_the_planned_end(self, client: AsyncClient) -> None:
        anna, bela = await create_manager(client), await create_manager(client)
        acme = await create_client(client)
        planned = now() + timedelta(days=60)
        await create_assignment(
            client, acme["id"], anna["id"], "primary", iso(now() - timedelta(days=1)), iso(planned)
        )
        response = await client.post(
            f"/v1/clients/{acme['id']}/handover", json={"to_manager_id": bela["id"]}
        )
        assert response.status_code == 201, response.text
        assert ts(response.json()["started"]["ends_at"]) == planned

    async def test_at_defaults_to_now(self, client: AsyncClient) -> None:
        anna, bela = await create_manager(client), await create_manager(client)
        acme = await create_client(client)
        await create_assignment(client, acme["id"], anna["id"], "primary", day(0))
        before = now()
        response = await client.post(
            f"/v1/clients/{acme['id']}/handover", json={"to_manager_id": bela["id"]}
        )
        assert response.status_code == 201, response.text
        assert before <= ts(response.json()["at"]) <= now()
        assert await responsible_manager(client, acme["id"], now()) == bela["id"]

    async def test_times_are_returned_in_utc(self, client: AsyncClient) -> None:
        bela = await create_manager(client)
        acme = await create_client(client)
        local = (now() + timedelta(days=2)).astimezone(timezone(timedelta(hours=2))).isoformat()
        response = await client.post(
            f"/v1/clients/{acme['id']}/handover", json={"to_manager_id": bela["id"], "at": local}
        )
        assert response.status_code == 201, response.text
        body = response.json()
        for value in (body["at"], body["started"]["starts_at"]):
            assert ts(value).utcoffset() == timedelta(0), body

    async def test_a_retry_with_the_same_idempotency_key_is_replayed(
        self, client: AsyncClient
    ) -> None:
        anna, bela = await create_manager(client), await create_manager(client)
        acme = await create_client(client)
        await create_assignment(client, acme["id"], anna["id"], "primary", day(0))
        url = f"/v1/clients/{acme['id']}/handover"
        body = {"to_manager_id": bela["id"], "at": iso(now() + timedelta(hours=2))}
        headers = {"Idempotency-Key": "handover-once"}
        first = await client.post(url, json=body, headers=headers)
        assert first.status_code == 201, first.text
        again = await client.post(url, json=body, headers=headers)
        assert again.status_code == 201, again.text
        assert again.headers["Idempotent-Replayed"] == "true"
        assert again.json() == first.json()
        assert len(await ids_of(client, client_id=acme["id"], role="primary")) == 2

    async def test_unassigned_client_gets_a_first_primary(self, client: AsyncClient) -> None:
        bela = await create_manager(client)
        acme = await create_client(client)
        response = await client.post(
            f"/v1/clients/{acme['id']}/handover", json={"to_manager_id": bela["id"]}
        )
        assert response.status_code == 201, response.text
        assert response.json()["ended"] is None
        assert response.json()["started"]["ends_at"] is None

    async def test_to_the_current_primary_is_409(self, client: AsyncClient) -> None:
        anna = await create_manager(client)
        acme = await create_client(client)
        await create_assignment(client, acme["id"], anna["id"], "primary", day(0))
        response = await client.post(
            f"/v1/clients/{acme['id']}/handover", json={"to_manager_id": anna["id"]}
        )
        assert_problem(response, 409)

    async def test_at_the_start_of_the_current_primary_is_409(self, client: AsyncClient) -> None:
        anna, bela = await create_manager(client), await create_manager(client)
        acme = await create_client(client)
        start = now() + timedelta(days=3)
        row = await create_assignment(client, acme["id"], anna["id"], "primary", iso(start))
        response = await client.post(
            f"/v1/clients/{acme['id']}/handover",
            json={"to_manager_id": bela["id"], "at": iso(start)},
        )
        assert_problem(response, 409)
        assert (await client.get(f"/v1/assignments/{row['id']}")).json() == row

    async def test_over_a_planned_primary_is_409_naming_it(self, client: AsyncClient) -> None:
        anna, bela = await create_manager(client), await create_manager(client)
        acme = await create_client(client)
        planned = await create_assignment(
            client, acme["id"], anna["id"], "primary", iso(now() + timedelta(days=3))
        )
        response = await client.post(
            f"/v1/clients/{acme['id']}/handover", json={"to_manager_id": bela["id"]}
        )
        assert_names(assert_problem(response, 409), planned["id"])

    async def test_backdated_is_422(self, client: AsyncClient) -> None:
        anna, bela = await create_manager(client), await create_manager(client)
        acme = await create_client(client)
        row = await create_assignment(client, acme["id"], anna["id"], "primary", day(0))
        response = await client.post(
            f"/v1/clients/{acme['id']}/handover",
            json={"to_manager_id": bela["id"], "at": iso(now() - timedelta(days=1))},
        )
        assert_invalid(response, "body.at")
        assert (await client.get(f"/v1/assignments/{row['id']}")).json() == row

    async def test_inactive_manager_is_422(self, client: AsyncClient) -> None:
        gone = await create_manager(client, active=False)
        acme = await create_client(client)
        response = await client.post(
            f"/v1/clients/{acme['id']}/handover", json={"to_manager_id": gone["id"]}
        )
        assert_invalid(response, "body.to_manager_id")

    async def test_archived_client_is_422(self, client: AsyncClient) -> None:
        anna = await create_manager(client)
        acme = await create_client(client)
        await archive(client, acme["id"])
        response = await client.post(
            f"/v1/clients/{acme['id']}/handover", json={"to_manager_id": anna["id"]}
        )
        assert_problem(response, 422)

    async def test_unknown_client_is_404(self, client: AsyncClient) -> None:
        anna = await create_manager(client)
        response = await client.post(
            "/v1/clients/00000000-0000-4000-8000-000000000000/handover",
            json={"to_manager_id": anna["id"]},
        )
        assert_problem(response, 404)

    @pytest.mark.parametrize("with_primary", [True, False], ids=["handover", "first_primary"])
    async def test_concurrent_handovers_exactly_one_wins(
        self, live_client: AsyncClient, with_primary: bool
    ) -> None:
        for _ in range(5):
            anna, bela, cili = [await create_manager(live_client) for _ in range(3)]
            acme = await create_client(live_client)
            original = None
            if with_primary:
                original = await create_assignment(
                    live_client,
                    acme["id"],
                    anna["id"],
                    "primary",
                    iso(now() - timedelta(days=1)),
                )
            at = now() + timedelta(minutes=30)
            url = f"/v1/clients/{acme['id']}/handover"
            responses = await asyncio.gather(
                live_client.post(url, json={"to_manager_id": bela["id"], "at": iso(at)}),
                live_client.post(url, json={"to_manager_id": cili["id"], "at": iso(at)}),
            )
            statuses = sorted(r.status_code for r in responses)
            assert statuses == [201, 409], [r.text for r in responses]
            winner = next(r for r in responses if r.status_code == 201).json()
            loser = next(r for r in responses if r.status_code == 409)
            assert_problem(loser, 409)
            primaries = (
                await live_client.get(
                    "/v1/assignments", params={"client_id": acme["id"], "role": "primary"}
                )
            ).json()["items"]
            by_id = {a["id"]: a for a in primaries}
            expected = {winner["started"]["id"]} | ({original["id"]} if original else set())
            assert set(by_id) == expected
            if original is not None:
                kept = by_id[original["id"]]
                assert kept["starts_at"] == original["starts_at"]
                assert ts(kept["ends_at"]) == at
                assert kept["version"] == 2
            new_manager = winner["started"]["manager_id"]
            assert await responsible_manager(live_client, acme["id"], at) == new_manager


class TestCreateAbsence:
    async def test_covers_every_primary_clipped_to_window_and_range(
        self, client: AsyncClient
    ) -> None:
        anna, xena, cover = [await create_manager(client) for _ in range(3)]
        w0 = day_start(now()) + timedelta(days=60)
        w1 = w0 + timedelta(days=14)
        long_ago = iso(w0 - timedelta(days=90))
        names = ("open", "ends", "starts", "before", "after", "other", "archived")
        c = {name: (await create_client(client))["id"] for name in names}
        await create_assignment(client, c["open"], anna["id"], "primary", long_ago)
        handed = w0 + timedelta(days=5)
        await create_assignment(client, c["ends"], anna["id"], "primary", long_ago, iso(handed))
        await create_assignment(client, c["ends"], xena["id"], "primary", iso(handed))
        starts = w0 + timedelta(days=3)
        await create_assignment(client, c["starts"], anna["id"], "primary", iso(starts))
        await create_assignment(client, c["before"], anna["id"], "primary", long_ago, iso(w0))
        await create_assignment(client, c["after"], anna["id"], "primary", iso(w1))
        await create_assignment(client, c["other"], xena["id"], "primary", long_ago)
        await create_assignment(client, c["archived"], anna["id"], "primary", long_ago)
        await archive(client, c["archived"])

        response = await client.post(
            f"/v1/managers/{anna['id']}/absences",
            json={
                "starts_at": iso(w0),
                "ends_at": iso(w1),
                "cover_manager_id": cover["id"],
                "reason": "parental leave",
            },
        )
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["manager_id"] == anna["id"]
        assert body["cover_manager_id"] == cover["id"]
        assert (ts(body["starts_at"]), ts(body["ends_at"])) == (w0, w1)
        assert body["reason"] == "parental leave"
        covers = {
            a["client_id"]: (ts(a["starts_at"]), ts(a["ends_at"])) for a in body["assignments"]
        }
        assert covers == {
            c["open"]: (w0, w1),
            c["ends"]: (w0, handed),
            c["starts"]: (starts, w1),
        }
        for a in body["assignments"]:
            assert a["role"] == "cover"
            assert a["manager_id"] == cover["id"]
            assert a["absence_id"] == body["id"]
            assert a["reason"] == "parental leave"
        listed = await ids_of(client, manager_id=cover["id"], role="cover")
        assert listed == {a["id"] for a in body["assignments"]}

        # Responsible during and after the window.
        async def who(name: str, at: datetime) -> str | None:
            return await responsible_manager(client, c[name], at)

        assert await who("open", w0 - US) == anna["id"]
        assert await who("open", w0) == cover["id"]
        assert await who("open", w1 - US) == cover["id"]
        assert await who("open", w1) == anna["id"]  # the cover ended by itself
        assert await who("ends", handed - US) == cover["id"]
        assert await who("ends", handed) == xena["id"]
        assert await who("starts", starts - US) is None
        assert await who("starts", starts) == cover["id"]
        assert await who("starts", w1) == anna["id"]
        assert await who("before", w0) is None
        assert await who("after", w1 - US) is None
        assert await who("other", w0) == xena["id"]

        during = await book(client, cover["id"], as_of=iso(starts))
        assert {e["client"]["id"]: e["role"] for e in during} == {
            c["open"]: "cover",
            c["ends"]: "cover",
            c["starts"]: "cover",
        }
        absent_book = await book_clients(client, anna["id"], as_of=iso(starts))
        assert not absent_book & {c["open"], c["ends"], c["starts"]}
        assert await book_clients(client, cover["id"], as_of=iso(w1)) == set()
        assert {c["open"], c["starts"]} <= await book_clients(client, anna["id"], as_of=iso(w1))

    async def test_no_primaries_creates_no_covers(self, client: AsyncClient) -> None:
        anna, cover = await create_manager(client), await create_manager(client)
        response = await client.post(
            f"/v1/managers/{anna['id']}/absences",
            json={
                "starts_at": "2027-01-01T00:00:00Z",
                "ends_at": "2027-01-02T00:00:00Z",
                "cover_manager_id": cover["id"],
            },
        )
        assert response.status_code == 201, response.text
        assert response.json()["assignments"] == []

    async def _absences(self, connection: AsyncConnection, manager_id: str) -> int:
        result = await connection.execute(
            text("SELECT count(*) FROM absences WHERE manager_id = :m"), {"m": manager_id}
        )
        return int(result.scalar_one())

    async def test_conflict_with_an_existing_cover_is_409_and_writes_nothing(
        self, client: AsyncClient, connection: AsyncConnection
    ) -> None:
        anna, yves, zoe = [await create_manager(client) for _ in range(3)]
        one, two = await create_client(client), await create_client(client)
        w0 = day_start(now()) + timedelta(days=30)
        w1 = w0 + timedelta(days=10)
        for acme in (one, two):
            await create_assignment(client, acme["id"], anna["id"], "primary", day(0))
        existing = await create_assignment(
            client,
            two["id"],
            yves["id"],
            "cover",
            iso(w0 + timedelta(days=2)),
            iso(w0 + timedelta(days=4)),
        )
        response = await client.post(
            f"/v1/managers/{anna['id']}/absences",
            json={"starts_at": iso(w0), "ends_at": iso(w1), "cover_manager_id": zoe["id"]},
        )
        assert_names(assert_problem(response, 409), existing["id"])
        assert await ids_of(client, role="cover", client_id=one["id"]) == set()
        assert await ids_of(client, role="cover", client_id=two["id"]) == {existing["id"]}
        assert await ids_of(client, manager_id=zoe["id"]) == set()
        assert await self._absences(connection, anna["id"]) == 0

    async def test_covers_follow_each_stint_of_the_absent_manager(
        self, client: AsyncClient
    ) -> None:
        anna, zoe = await create_manager(client), await create_manager(client)
        one, two = await create_client(client), await create_client(client)
        w0 = day_start(now()) + timedelta(days=30)
        w1 = w0 + timedelta(days=10)
        await create_assignment(client, one["id"], anna["id"], "primary", day(0))
        # anna hands `two` to zoe inside the window and takes it back before it ends.
        handed, back = w0 + timedelta(days=3), w0 + timedelta(days=6)
        await create_assignment(client, two["id"], anna["id"], "primary", day(0), iso(handed))
        await create_assignment(client, two["id"], zoe["id"], "primary", iso(handed), iso(back))
        await create_assignment(client, two["id"], anna["id"], "primary", iso(back))
        response = await client.post(
            f"/v1/managers/{anna['id']}/absences",
            json={"starts_at": iso(w0), "ends_at": iso(w1), "cover_manager_id": zoe["id"]},
        )
        # Covers are clipped to anna's own primaries, so zoe covers `two` around (never
        # during) her own primary stint.
        assert response.status_code == 201, response.text
        spans = sorted(
            (a["client_id"], ts(a["starts_at"]), ts(a["ends_at"]))
            for a in response.json()["assignments"]
        )
        assert spans == sorted(
            [(one["id"], w0, w1), (two["id"], w0, handed), (two["id"], back, w1)]
        )
        assert await responsible_manager(client, two["id"], handed) == zoe["id"]
        assert await responsible_manager(client, two["id"], back) == zoe["id"]
        assert await responsible_manager(client, two["id"], w1) == anna["id"]

    async def test_cover_manager_already_covering_is_409_and_writes_nothing(
        self, client: AsyncClient, connection: AsyncConnection
    ) -> None:
        anna, zoe = await create_manager(client), await create_manager(client)
        one, two = await create_client(client), await create_client(client)
        w0 = day_start(now()) + timedelta(days=30)
        w1 = w0 + timedelta(days=10)
        await create_assignment(client, one["id"], anna["id"], "primary", day(0))
        await create_assignment(client, two["id"], anna["id"], "primary", day(0))
        zoe_cover = await create_assignment(
            client, two["id"], zoe["id"], "cover", iso(w0 + timedelta(days=1)), iso(w1)
        )
        response = await client.post(
            f"/v1/managers/{anna['id']}/absences",
            json={"starts_at": iso(w0), "ends_at": iso(w1), "cover_manager_id": zoe["id"]},
        )
        assert_names(assert_problem(response, 409), zoe_cover["id"])
        assert await ids_of(client, manager_id=zoe["id"]) == {zoe_cover["id"]}
        assert await self._absences(connection, anna["id"]) == 0

    @pytest.mark.parametrize(
        ("fields", "field"),
        [
            ({"cover_manager_id": "self"}, "body.cover_manager_id"),
            ({"ends_at": "2027-01-01T00:00:00Z"}, "body"),
            ({"starts_at": "2027-01-01T00:00:00"}, "body.starts_at"),
            ({"reason": ""}, "body.reason"),
        ],
    )
    async def test_invalid_absence_is_422(
        self, client: AsyncClient, fields: dict[str, Any], field: str
    ) -> None:
        anna, cover = await create_manager(client), await create_manager(client)
        body = {
            "starts_at": "2027-01-01T00:00:00Z",
            "ends_at": "2027-01-10T00:00:00Z",
            "cover_manager_id": cover["id"],
            **fields,
        }
        if body["cover_manager_id"] == "self":
            body["cover_manager_id"] = anna["id"]
        response = await client.post(f"/v1/managers/{anna['id']}/absences", json=body)
        if field == "body":
            assert_problem(response, 422)
        else:
            assert_invalid(response, field)

    async def test_inactive_cover_is_422(self, client: AsyncClient) -> None:
        anna = await create_manager(client)
        gone = await create_manager(client, active=False)
        response = await client.post(
            f"/v1/managers/{anna['id']}/absences",
            json={
                "starts_at": "2027-01-01T00:00:00Z",
                "ends_at": "2027-01-10T00:00:00Z",
                "cover_manager_id": gone["id"],
            },
        )
        assert_invalid(response, "body.cover_manager_id")

    async def test_unknown_manager_is_404(self, client: AsyncClient) -> None:
        cover = await create_manager(client)
        response = await client.post(
            "/v1/managers/00000000-0000-4000-8000-000000000000/absences",
            json={
                "starts_at": "2027-01-01T00:00:00Z",
                "ends_at": "2027-01-10T00:00:00Z",
                "cover_manager_id": cover["id"],
            },
        )
        assert_problem(response, 404)


class TestGetResponsibleManager:
    async def test_unassigned_is_a_404_problem(self, client: AsyncClient) -> None:
        acme = await create_client(client)
        body = assert_problem(await responsible(client, acme["id"]), 404)
        assert body["reason"] == "unassigned"
        assert acme["id"] in body["detail"]

    async def test_a_secondary_alone_is_unassigned(self, client: AsyncClient) -> None:
        anna = await create_manager(client)
        acme = await create_client(client)
        await create_assignment(client, acme["id"], anna["id"], "secondary", day(0))
        body = assert_problem(await responsible(client, acme["id"]), 404)
        assert body["reason"] == "unassigned"

    async def test_unknown_client_is_404_not_unassigned(self, client: AsyncClient) -> None:
        body = assert_problem(
            await responsible(client, "00000000-0000-4000-8000-000000000000"), 404
        )
        assert body.get("reason") != "unassigned"

    async def test_cover_wins_over_primary(self, client: AsyncClient) -> None:
        anna, bela, cili = [await create_manager(client) for _ in range(3)]
        acme = await create_client(client)
        primary = await create_assignment(client, acme["id"], anna["id"], "primary", day(0))
        cover = await create_assignment(client, acme["id"], bela["id"], "cover", day(5), day(9))
        await create_assignment(client, acme["id"], cili["id"], "secondary", day(0))
        response = await responsible(client, acme["id"], D + timedelta(days=6))
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["manager_id"] == bela["id"]
        assert body["role"] == "cover"
        assert body["assignment"]["id"] == cover["id"]
        assert body["client_id"] == acme["id"]
        assert ts(body["at"]) == D + timedelta(days=6)
        after = (await responsible(client, acme["id"], D + timedelta(days=9))).json()
        assert (after["manager_id"], after["role"]) == (anna["id"], "primary")
        assert after["assignment"]["id"] == primary["id"]

    async def test_at_defaults_to_now(self, client: AsyncClient) -> None:
        anna, bela = await create_manager(client), await create_manager(client)
        acme = await create_client(client)
        switch = now() + timedelta(days=1)
        await create_assignment(client, acme["id"], anna["id"], "primary", day(0), iso(switch))
        await create_assignment(client, acme["id"], bela["id"], "primary", iso(switch))
        response = await responsible(client, acme["id"])
        assert response.status_code == 200, response.text
        assert response.json()["manager_id"] == anna["id"]
        assert now() - timedelta(minutes=1) <= ts(response.json()["at"]) <= now()

    async def test_dst_boundary_written_in_local_time(self, client: AsyncClient) -> None:
        """Budapest springs forward on 2026-03-29 (02:00 CET -> 03:00 CEST): 01:30Z is
        03:30 local. The first primary ends at 01:30Z, the next starts at 03:30+02:00."""
        anna, bela = await create_manager(client), await create_manager(client)
        acme = await create_client(client)
        old = await create_assignment(
            client, acme["id"], anna["id"], "primary", "2026-01-01T00:00:00Z", "2026-03-29T01:30Z"
        )
        new = await create_assignment(
            client, acme["id"], bela["id"], "primary", "2026-03-29T03:30:00+02:00"
        )
        boundary = utc(2026, 3, 29, 1, 30)
        assert ts(new["starts_at"]) == ts(old["ends_at"]) == boundary
        assert ts(new["starts_at"]).utcoffset() == timedelta(0)
        at_boundary = await responsible(client, acme["id"], boundary)
        assert at_boundary.status_code == 200, at_boundary.text
        assert at_boundary.json()["assignment"]["id"] == new["id"]
        assert await responsible_manager(client, acme["id"], boundary) == bela["id"]
        local = await client.get(
            f"/v1/clients/{acme['id']}/responsible", params={"at": "2026-03-29T03:30:00+02:00"}
        )
        assert local.json()["manager_id"] == bela["id"]
        assert await responsible_manager(client, acme["id"], boundary - US) == anna["id"]
        before_local = await client.get(
            f"/v1/clients/{acme['id']}/responsible",
            params={"at": "2026-03-29T01:59:59.999999+01:00"},  # the last CET instant
        )
        assert before_local.json()["manager_id"] == anna["id"]

    @pytest.mark.parametrize("value", ["2026-01-01T00:00:00", "soon", "2026-02-30T00:00:00Z"])
    async def test_invalid_at_is_422(self, client: AsyncClient, value: str) -> None:
        acme = await create_client(client)
        response = await client.get(f"/v1/clients/{acme['id']}/responsible", params={"at": value})
        assert_invalid(response, "query.at")


@pytest.fixture
async def budapest_client(
    settings: Settings, engine: AsyncEngine, connection: AsyncConnection, token: str
) -> AsyncIterator[AsyncClient]:
    """Like ``client`` (same transaction), with ``ORG__TIME_ZONE=Europe/Budapest``."""
    org = settings.org.model_copy(update={"time_zone": "Europe/Budapest"})
    application: FastAPI = create_app(settings.model_copy(update={"org": org}))
    application.state.engine = engine
    application.state.sessionmaker = async_sessionmaker(
        bind=connection,
        join_transaction_mode="create_savepoint",
        expire_on_commit=False,
        autoflush=False,
    )
    async with AsyncClient(
        transport=ASGITransport(app=application),
        base_url="http://test",
        headers={"Authorization": f"Bearer {token}"},
    ) as http:
        yield http


class TestGetBookOfBusiness:
    async def test_pages_with_limit_2_over_5_clients(self, client: AsyncClient) -> None:
        anna = await create_manager(client)
        expected = set()
        for _ in range(5):
            acme = await create_client(client)
            expected.add(acme["id"])
            await create_assignment(client, acme["id"], anna["id"], "primary", day(0))
        seen: list[str] = []
        sizes: list[int] = []
        cursor: str | None = None
        for _ in range(10):
            params: dict[str, Any] = {"limit": 2}
            if cursor is not None:
                params["cursor"] = cursor
            response = await client.get(f"/v1/managers/{anna['id']}/book", params=params)
            assert response.status_code == 200, response.text
            page = response.json()
            sizes.append(len(page["items"]))
            for entry in page["items"]:
                assert entry["role"] == "primary"
                assert ts(entry["starts_at"]) == D
                assert entry["ends_at"] is None
                seen.append(entry["client"]["id"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert sizes == [2, 2, 1]
        assert len(seen) == len(set(seen)) == 5
        assert set(seen) == expected

    async def test_as_of_a_date_is_midnight_in_the_org_time_zone(self, client: AsyncClient) -> None:
        anna = await create_manager(client)
        acme = await create_client(client)
        await create_assignment(
            client, acme["id"], anna["id"], "primary", "2026-01-01T00:00:00Z", "2026-02-01T00:00Z"
        )
        assert await book_clients(client, anna["id"], as_of="2025-12-31") == set()
        assert await book_clients(client, anna["id"], as_of="2026-01-01") == {acme["id"]}
        assert await book_clients(client, anna["id"], as_of="2026-01-31") == {acme["id"]}
        assert await book_clients(client, anna["id"], as_of="2026-02-01") == set()
        assert await book_clients(client, anna["id"], as_of="2026-01-31T23:59:59.999999Z") == {
            acme["id"]
        }
        assert await book_clients(client, anna["id"], as_of="2026-02-01T00:59:59+01:00") == (
            {acme["id"]}
        )

    async def test_as_of_a_date_follows_org_time_zone_setting(
        self, client: AsyncClient, budapest_client: AsyncClient
    ) -> None:
        anna = await create_manager(client)
        acme = await create_client(client)
        # 2026-01-01 00:00 Budapest = 2025-12-31T23:00Z; the assignment starts 30 min later.
        await create_assignment(client, acme["id"], anna["id"], "primary", "2025-12-31T23:30Z")
        assert await book_clients(budapest_client, anna["id"], as_of="2026-01-01") == set()
        assert await book_clients(client, anna["id"], as_of="2026-01-01") == {acme["id"]}
        assert await book_clients(budapest_client, anna["id"], as_of="2026-01-02") == {acme["id"]}

    async def test_lists_each_client_with_the_role_that_puts_it_there(
        self, client: AsyncClient
    ) -> None:
        anna, bela, cili = [await create_manager(client) for _ in range(3)]
        own, covered, side = [await create_client(client) for _ in range(3)]
        mine = await create_assignment(client, own["id"], bela["id"], "primary", day(0))
        await create_assignment(client, covered["id"], anna["id"], "primary", day(0))
        cover = await create_assignment(client, covered["id"], bela["id"], "cover", day(5), day(9))
        await create_assignment(client, side["id"], cili["id"], "primary", day(0))
        await create_assignment(client, side["id"], bela["id"], "secondary", day(0))
        during = iso(D + timedelta(days=6))
        entries = await book(client, bela["id"], as_of=during)
        assert {e["client"]["id"]: (e["role"], e["assignment_id"]) for e in entries} == {
            own["id"]: ("primary", mine["id"]),
            covered["id"]: ("cover", cover["id"]),
        }
        assert entries[0]["client"]["name"]
        assert await book_clients(client, anna["id"], as_of=during) == set()
        assert await book_clients(client, anna["id"], as_of=day(9)) == {covered["id"]}
        assert await book_clients(client, bela["id"], as_of=day(9)) == {own["id"]}

    async def test_as_of_defaults_to_now(self, client: AsyncClient) -> None:
        anna = await create_manager(client)
        now_client, later_client = await create_client(client), await create_client(client)
        await create_assignment(
            client, now_client["id"], anna["id"], "primary", iso(now() - timedelta(days=1))
        )
        await create_assignment(
            client, later_client["id"], anna["id"], "primary", iso(now() + timedelta(days=1))
        )
        assert await book_clients(client, anna["id"]) == {now_client["id"]}

    async def test_unknown_manager_is_404(self, client: AsyncClient) -> None:
        response = await client.get("/v1/managers/00000000-0000-4000-8000-000000000000/book")
        assert_problem(response, 404)

    @pytest.mark.parametrize(
        ("params", "field"),
        [
            ({"as_of": "tomorrow"}, "query.as_of"),
            ({"as_of": "2026-02-30"}, "query.as_of"),
            ({"cursor": "garbage"}, "query.cursor"),
            ({"limit": 501}, "query.limit"),
        ],
    )
    async def test_invalid_query_is_422(
        self, client: AsyncClient, params: dict[str, Any], field: str
    ) -> None:
        anna = await create_manager(client)
        response = await client.get(f"/v1/managers/{anna['id']}/book", params=params)
        body = assert_problem(response, 422)
        # as_of is an instant-or-date union: its errors come as query.as_of.datetime/.date.
        fields = error_fields(body)
        assert any(f == field or f.startswith(field + ".") for f in fields), body


class TestDeactivateManager:
    async def test_open_primaries_make_it_a_409_listing_them(self, client: AsyncClient) -> None:
        anna = await create_manager(client)
        clients = [await create_client(client) for _ in range(4)]
        running = await create_assignment(client, clients[0]["id"], anna["id"], "primary", day(0))
        planned_end = await create_assignment(
            client,
            clients[1]["id"],
            anna["id"],
            "primary",
            day(0),
            iso(now() + timedelta(days=10)),
        )
        await create_assignment(client, clients[2]["id"], anna["id"], "primary", day(0), day(5))
        future = await create_assignment(
            client, clients[3]["id"], anna["id"], "primary", iso(now() + timedelta(days=3))
        )
        response = await client.patch(f"/v1/managers/{anna['id']}", json={"active": False})
        body = assert_problem(response, 409)
        listed = {(a["id"], a["client_id"]) for a in body["open_primary_assignments"]}
        assert listed == {
            (running["id"], clients[0]["id"]),
            (planned_end["id"], clients[1]["id"]),
            (future["id"], clients[3]["id"]),
        }
        still = await client.get(f"/v1/managers/{anna['id']}")
        assert still.json()["active"] is True
        assert still.json()["version"] == anna["version"]

    async def test_successor_takes_over_every_client_atomically(self, client: AsyncClient) -> None:
        anna, sam = await create_manager(client), await create_manager(client)
        since = now() - timedelta(days=10)
        planned = now() + timedelta(days=20)
        clients = [await create_client(client) for _ in range(3)]
        originals = [
            await create_assignment(client, clients[0]["id"], anna["id"], "primary", iso(since)),
            await create_assignment(
                client, clients[1]["id"], anna["id"], "primary", iso(since), iso(planned)
            ),
            await create_assignment(client, clients[2]["id"], anna["id"], "primary", iso(since)),
        ]
        ids = {c["id"] for c in clients}
        before = now()
        response = await client.patch(
            f"/v1/managers/{anna['id']}", json={"active": False, "successor_id": sam["id"]}
        )
        assert response.status_code == 200, response.text
        assert response.json()["active"] is False
        after = now()
        for acme in clients:
            assert await responsible_manager(client, acme["id"], now()) == sam["id"]
        assert await book_clients(client, anna["id"]) == set()
        yesterday = (now() - timedelta(days=1)).date().isoformat()
        assert await book_clients(client, anna["id"], as_of=yesterday) == ids
        assert await book_clients(client, sam["id"]) == ids
        assert await book_clients(client, sam["id"], as_of=yesterday) == set()
        for original in originals:
            kept = (await client.get(f"/v1/assignments/{original['id']}")).json()
            assert kept["starts_at"] == original["starts_at"]
            assert before <= ts(kept["ends_at"]) <= after
        successor_rows = (
            await client.get("/v1/assignments", params={"manager_id": sam["id"], "role": "primary"})
        ).json()["items"]
        ends = {a["client_id"]: a["ends_at"] for a in successor_rows}
        assert ends[clients[0]["id"]] is None
        assert ts(ends[clients[1]["id"]]) == planned

    async def test_successor_gets_a_planned_primary_whole(self, client: AsyncClient) -> None:
        anna, sam = await create_manager(client), await create_manager(client)
        acme = await create_client(client)
        start = now() + timedelta(days=5)
        await create_assignment(client, acme["id"], anna["id"], "primary", iso(start))
        response = await client.patch(
            f"/v1/managers/{anna['id']}", json={"active": False, "successor_id": sam["id"]}
        )
        assert response.status_code == 200, response.text
        rows = (await client.get("/v1/assignments", params={"client_id": acme["id"]})).json()
        assert [(r["manager_id"], ts(r["starts_at"])) for r in rows["items"]] == [
            (sam["id"], start)
        ]

    async def test_open_covers_and_secondaries_end_with_the_manager(
        self, client: AsyncClient
    ) -> None:
        anna, bela = await create_manager(client), await create_manager(client)
        acme = await create_client(client)
        await create_assignment(client, acme["id"], bela["id"], "primary", day(0))
        secondary = await create_assignment(client, acme["id"], anna["id"], "secondary", day(0))
        cover = await create_assignment(
            client, acme["id"], anna["id"], "cover", iso(now() - timedelta(days=1))
        )
        planned = await create_assignment(
            client, acme["id"], anna["id"], "secondary", iso(now() + timedelta(days=3))
        )
        before = now()
        response = await client.patch(f"/v1/managers/{anna['id']}", json={"active": False})
        assert response.status_code == 200, response.text
        for row in (secondary, cover):
            ended = (await client.get(f"/v1/assignments/{row['id']}")).json()
            assert ended["ends_at"] is not None
            assert before <= ts(ended["ends_at"]) <= now()
        assert (await client.get(f"/v1/assignments/{planned['id']}")).status_code == 404
        assert await responsible_manager(client, acme["id"], now()) == bela["id"]

    @pytest.mark.parametrize("successor", ["self", "inactive", "unknown"])
    async def test_unusable_successor_is_422_and_changes_nothing(
        self, client: AsyncClient, successor: str
    ) -> None:
        anna = await create_manager(client)
        acme = await create_client(client)
        row = await create_assignment(client, acme["id"], anna["id"], "primary", day(0))
        successor_id = {
            "self": anna["id"],
            "inactive": (await create_manager(client, active=False))["id"],
            "unknown": "00000000-0000-4000-8000-000000000000",
        }[successor]
        response = await client.patch(
            f"/v1/managers/{anna['id']}", json={"active": False, "successor_id": successor_id}
        )
        assert_invalid(response, "body.successor_id")
        assert (await client.get(f"/v1/assignments/{row['id']}")).json() == row
        assert (await client.get(f"/v1/managers/{anna['id']}")).json()["active"] is True

    async def test_successor_without_deactivation_is_422(self, client: AsyncClient) -> None:
        anna, sam = await create_manager(client), await create_manager(client)
        response = await client.patch(
            f"/v1/managers/{anna['id']}", json={"full_name": "Anna", "successor_id": sam["id"]}
        )
        assert_invalid(response, "body.successor_id")

    async def test_stale_if_match_rolls_the_handover_back(self, client: AsyncClient) -> None:
        anna, sam = await create_manager(client), await create_manager(client)
        acme = await create_client(client)
        row = await create_assignment(client, acme["id"], anna["id"], "primary", day(0))
        response = await client.patch(
            f"/v1/managers/{anna['id']}",
            json={"active": False, "successor_id": sam["id"]},
            headers={"If-Match": '"99"'},
        )
        assert_problem(response, 412)
        assert (await client.get(f"/v1/assignments/{row['id']}")).json() == row
        assert await book_clients(client, sam["id"]) == set()
