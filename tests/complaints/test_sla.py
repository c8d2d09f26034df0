"""SLA figures of complaints: due times and breaches from the history and the policy.

Targets are elapsed (24/7) hours. Backfilled ``received_at`` and transition ``at`` values
put the clocks in the past, so every due time is an exact instant the test can name.
Every test runs in the ``client`` fixture's rolled-back transaction.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.config import Settings
from app.core.auth import Role
from tests.assertions import assert_invalid, assert_problem
from tests.conftest import make_token
from tests.factories import (
    create_client,
    create_complaint,
    move_complaint,
)

BUDAPEST = ZoneInfo("Europe/Budapest")
US = timedelta(microseconds=1)
H = timedelta(hours=1)


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def now() -> datetime:
    return datetime.now(UTC)


def bud(day: int, hour: int, minute: int, *, fold: int = 0) -> datetime:
    """A Budapest wall-clock time in October 2026 (``fold=1`` picks the second 02:xx on
    the 25th, after the clocks went back)."""
    return datetime(2026, 10, day, hour, minute, tzinfo=BUDAPEST, fold=fold)


async def get(http: AsyncClient, complaint_id: str) -> dict[str, Any]:
    response = await http.get(f"/v1/complaints/{complaint_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


async def policies(http: AsyncClient) -> dict[tuple[str, str | None], dict[str, Any]]:
    response = await http.get("/v1/sla-policies", params={"limit": 500})
    assert response.status_code == 200, response.text
    return {(p["severity"], p["segment"]): p for p in response.json()["items"]}


async def walk(http: AsyncClient, complaint_id: str, steps: list[tuple[str, datetime]]) -> None:
    for to, at in steps:
        await move_complaint(http, complaint_id, to, at=at.isoformat())


class TestDefaults:
    async def test_seeded_defaults(self, client: AsyncClient) -> None:
        found = await policies(client)
        assert {
            k: (p["first_response_hours"], p["resolution_hours"]) for k, p in found.items()
        } == {
            ("critical", None): (1, 24),
            ("high", None): (4, 72),
            ("medium", None): (24, 120),
            ("low", None): (48, 240),
        }

    @pytest.mark.parametrize(
        ("severity", "first", "resolution"),
        [("critical", 1, 24), ("high", 4, 72), ("medium", 24, 120), ("low", 48, 240)],
    )
    async def test_due_times_per_severity(
        self, client: AsyncClient, severity: str, first: int, resolution: int
    ) -> None:
        acme = await create_client(client)
        received = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
        complaint = await create_complaint(
            client, acme["id"], severity=severity, received_at=received.isoformat()
        )
        sla = complaint["sla"]
        assert (sla["first_response_hours"], sla["resolution_hours"]) == (first, resolution)
        assert ts(sla["first_response_due_at"]) == received + first * H
        assert ts(sla["resolution_due_at"]) == received + resolution * H
        assert sla["clock"] == "running"
        assert sla["first_responded_at"] is None


class TestFirstResponse:
    @pytest.mark.parametrize(("late", "breached"), [(timedelta(0), False), (US, True)])
    async def test_response_exactly_at_the_due_instant_is_in_time(
        self, client: AsyncClient, late: timedelta, breached: bool
    ) -> None:
        acme = await create_client(client)
        received = datetime(2026, 11, 2, 10, 0, 0, 250000, tzinfo=UTC)
        complaint = await create_complaint(
            client, acme["id"], severity="critical", received_at=received.isoformat()
        )
        at = received + H + late
        moved = await move_complaint(client, complaint["id"], "acknowledged", at=at.isoformat())
        for body in (moved["complaint"], await get(client, complaint["id"])):
            sla = body["sla"]
            assert ts(sla["first_response_due_at"]) == received + H
            assert ts(sla["first_responded_at"]) == at
            assert sla["first_response_breached"] is breached

    async def test_unanswered_complaint_breaches_once_due(self, client: AsyncClient) -> None:
        acme = await create_client(client)
        fresh = await create_complaint(
            client, acme["id"], received_at=(now() - timedelta(minutes=50)).isoformat()
        )
        stale = await create_complaint(
            client, acme["id"], received_at=(now() - timedelta(minutes=70)).isoformat()
        )
        assert fresh["sla"]["first_response_breached"] is False
        assert fresh["breached"] is False
        assert stale["sla"]["first_response_breached"] is True
        assert stale["breached"] is True

    async def test_only_the_first_transition_out_of_open_counts(self, client: AsyncClient) -> None:
        acme = await create_client(client)
        received = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)
        complaint = await create_complaint(client, acme["id"], received_at=received.isoformat())
        cid = complaint["id"]
        await walk(
            client,
            cid,
            [
                ("acknowledged", received + 30 * timedelta(minutes=1)),
                ("in_progress", received + 2 * H),
                ("resolved", received + 3 * H),
                ("in_progress", received + 4 * H),
            ],
        )
        sla = (await get(client, cid))["sla"]
        assert ts(sla["first_responded_at"]) == received + timedelta(minutes=30)
        assert sla["first_response_breached"] is False


class TestResolutionClock:
    async def test_running_paused_stopped(self, client: AsyncClient) -> None:
        acme = await create_client(client)
        received = now() - 3 * H
        complaint = await create_complaint(client, acme["id"], received_at=received.isoformat())
        cid = complaint["id"]
        await walk(
            client,
            cid,
            [("acknowledged", received + 10 * timedelta(minutes=1)), ("in_progress", received + H)],
        )
        running = (await get(client, cid))["sla"]
        assert running["clock"] == "running"
        assert ts(running["resolution_due_at"]) == received + 24 * H
        assert running["resolution_breached"] is False

        await move_complaint(client, cid, "waiting_on_client", at=(received + 2 * H).isoformat())
        paused = (await get(client, cid))["sla"]
        assert paused["clock"] == "paused"
        assert paused["resolution_due_at"] is None  # not running, target not reached
        assert paused["resolution_breached"] is False

        back = received + 3 * H - timedelta(minutes=1)  # paused 59 minutes
        await move_complaint(client, cid, "in_progress", at=back.isoformat())
        resumed = (await get(client, cid))["sla"]
        assert resumed["clock"] == "running"
        assert ts(resumed["resolution_due_at"]) == received + 24 * H + timedelta(minutes=59)

        await move_complaint(client, cid, "resolved")
        stopped = (await get(client, cid))["sla"]
        assert stopped["clock"] == "stopped"
        assert stopped["resolution_due_at"] is None
        assert stopped["resolution_breached"] is False

    @pytest.mark.parametrize(("late", "breached"), [(timedelta(0), False), (US, True)])
    async def test_resolution_exactly_at_the_due_instant_is_in_time(
        self, client: AsyncClient, late: timedelta, breached: bool
    ) -> None:
        acme = await create_client(client)
        received = datetime(2026, 11, 1, 6, 0, tzinfo=UTC)
        complaint = await create_complaint(client, acme["id"], received_at=received.isoformat())
        cid = complaint["id"]
        await walk(
            client,
            cid,
            [
                ("acknowledged", received + timedelta(minutes=5)),
                ("in_progress", received + H),
                ("waiting_on_client", received + 2 * H),
                ("in_progress", received + 5 * H),  # 3 h paused
                ("resolved", received + 27 * H + late),
            ],
        )
        sla = (await get(client, cid))["sla"]
        assert sla["resolution_breached"] is breached
        assert sla["clock"] == "stopped"

    async def test_breached_while_paused(self, client: AsyncClient) -> None:
        acme = await create_client(client)
        received = now() - 40 * H
        complaint = await create_complaint(client, acme["id"], received_at=received.isoformat())
        cid = complaint["id"]
        await walk(
            client,
            cid,
            [
                ("acknowledged", received + timedelta(minutes=5)),
                ("in_progress", received + H),
                ("waiting_on_client", received + 25 * H),  # 25 h active > 24 h target
            ],
        )
        sla = (await get(client, cid))["sla"]
        assert sla["clock"] == "paused"
        assert sla["resolution_breached"] is True
        assert ts(sla["resolution_due_at"]) == received + 24 * H

    @pytest.mark.parametrize("then", ["waiting_on_client", "resolved"])
    async def test_due_time_of_an_earlier_breach_does_not_move(
        self, client: AsyncClient, then: str
    ) -> None:
        """The target (24 h) is reached 24 h after receipt; pausing, resuming and
        pausing (or resolving) afterwards must not move that past instant."""
        acme = await create_client(client)
        received = datetime(2026, 11, 10, 8, 0, tzinfo=UTC)
        complaint = await create_complaint(client, acme["id"], received_at=received.isoformat())
        cid = complaint["id"]
        await walk(
            client,
            cid,
            [
                ("acknowledged", received + timedelta(minutes=5)),
                ("in_progress", received + H),
                ("waiting_on_client", received + 25 * H),  # breached at received + 24 h
            ],
        )
        first = (await get(client, cid))["sla"]
        assert ts(first["resolution_due_at"]) == received + 24 * H
        await walk(client, cid, [("in_progress", received + 27 * H), (then, received + 28 * H)])
        sla = (await get(client, cid))["sla"]
        assert sla["resolution_breached"] is True
        assert ts(sla["resolution_due_at"]) == received + 24 * H


class TestDaylightSavingChange:
    """Europe/Budapest leaves summer time on 2026-10-25: 03:00 CEST becomes 02:00 CET, so
    that night has 25 hours. Elapsed-hour targets must not notice, whatever the database
    session's time zone."""

    @pytest.fixture(params=["UTC", "Europe/Budapest"])
    async def session_time_zone(
        self, request: pytest.FixtureRequest, connection: AsyncConnection
    ) -> str:
        zone = str(request.param)
        await connection.execute(text(f"SET TIME ZONE '{zone}'"))  # undone by the rollback
        return zone

    async def test_pause_across_the_change_critical(
        self, client: AsyncClient, session_time_zone: str
    ) -> None:
        acme = await create_client(client)
        received = datetime.fromisoformat("2026-10-24T20:00:00+02:00")
        complaint = await create_complaint(
            client, acme["id"], severity="critical", received_at=received.isoformat()
        )
        cid = complaint["id"]
        paused_from = bud(25, 1, 30)  # 23:30Z on the 24th, CEST
        paused_to = bud(25, 2, 30, fold=1)  # the second 02:30, CET: 01:30Z
        assert paused_to - paused_from == timedelta(hours=1)  # wall clock, naively
        paused = paused_to.astimezone(UTC) - paused_from.astimezone(UTC)
        assert paused == 2 * H  # elapsed
        await walk(
            client,
            cid,
            [
                ("acknowledged", datetime.fromisoformat("2026-10-24T20:30:00+02:00")),
                ("in_progress", datetime.fromisoformat("2026-10-24T21:00:00+02:00")),
                ("waiting_on_client", paused_from),
            ],
        )
        during = (await get(client, cid))["sla"]
        assert during["clock"] == "paused"
        assert during["resolution_due_at"] is None
        await move_complaint(client, cid, "in_progress", at=paused_to.isoformat())
        sla = (await get(client, cid))["sla"]
        expected = received.astimezone(UTC) + 24 * H + paused
        assert expected == datetime(2026, 10, 25, 20, 0, tzinfo=UTC)
        assert ts(sla["resolution_due_at"]) == expected
        assert ts(sla["first_response_due_at"]) == datetime(2026, 10, 24, 19, 0, tzinfo=UTC)
        assert sla["first_response_breached"] is False
        assert sla["resolution_breached"] is True  # long past by now

    async def test_pause_across_the_change_after_more_than_a_day_active(
        self, client: AsyncClient, session_time_zone: str
    ) -> None:
        """Medium (120 h): 29.5 h of the target are used before the pause, so the clock's
        summary holds more than a day."""
        acme = await create_client(client)
        received = datetime.fromisoformat("2026-10-23T20:00:00+02:00")
        complaint = await create_complaint(
            client, acme["id"], severity="medium", received_at=received.isoformat()
        )
        cid = complaint["id"]
        paused_from = bud(25, 1, 30)
        paused_to = bud(25, 2, 30, fold=1)
        await walk(
            client,
            cid,
            [
                ("acknowledged", datetime.fromisoformat("2026-10-23T21:00:00+02:00")),
                ("in_progress", datetime.fromisoformat("2026-10-23T22:00:00+02:00")),
                ("waiting_on_client", paused_from),
                ("in_progress", paused_to),
            ],
        )
        sla = (await get(client, cid))["sla"]
        expected = received.astimezone(UTC) + 120 * H + 2 * H
        assert expected == datetime(2026, 10, 28, 20, 0, tzinfo=UTC)
        assert ts(sla["resolution_due_at"]) == expected

    async def test_two_pauses_one_across_the_change(
        self, client: AsyncClient, session_time_zone: str
    ) -> None:
        acme = await create_client(client)
        received = datetime.fromisoformat("2026-10-24T12:00:00+02:00")  # 10:00Z
        complaint = await create_complaint(
            client, acme["id"], severity="high", received_at=received.isoformat()
        )
        cid = complaint["id"]
        await walk(
            client,
            cid,
            [
                ("acknowledged", datetime.fromisoformat("2026-10-24T13:00:00+02:00")),
                ("in_progress", datetime.fromisoformat("2026-10-24T14:00:00+02:00")),
                ("waiting_on_client", datetime.fromisoformat("2026-10-24T15:00:00+02:00")),
                ("in_progress", datetime.fromisoformat("2026-10-24T16:30:00+02:00")),  # 1.5 h
                ("waiting_on_client", bud(25, 2, 15)),  # CEST: 00:15Z
                ("in_progress", bud(25, 2, 45, fold=1)),  # CET: 01:45Z, 1.5 h
            ],
        )
        sla = (await get(client, cid))["sla"]
        expected = received.astimezone(UTC) + 72 * H + 3 * H
        assert expected == datetime(2026, 10, 27, 13, 0, tzinfo=UTC)
        assert ts(sla["resolution_due_at"]) == expected


class TestPolicyChanges:
    async def test_patching_a_policy_recomputes_due_times_and_breaches(
        self, client: AsyncClient
    ) -> None:
        acme = await create_client(client)
        received = now() - 2 * H
        complaint = await create_complaint(client, acme["id"], received_at=received.isoformat())
        cid = complaint["id"]
        assert complaint["sla"]["first_response_breached"] is True
        assert complaint["breached"] is True
        critical = (await policies(client))[("critical", None)]
        url = f"/v1/sla-policies/{critical['id']}"
        patched = await client.patch(url, json={"first_response_hours": 3})
        assert patched.status_code == 200, patched.text
        assert (patched.json()["first_response_hours"], patched.json()["resolution_hours"]) == (
            3,
            24,
        )
        after = await get(client, cid)
        assert after["sla"]["first_response_hours"] == 3
        assert ts(after["sla"]["first_response_due_at"]) == received + 3 * H
        assert after["sla"]["first_response_breached"] is False
        assert after["breached"] is False
        listed = await client.get("/v1/complaints", params={"breached": "true"})
        assert cid not in {x["id"] for x in listed.json()["items"]}

        # Resolution target below the time already used: breached at once.
        await client.patch(url, json={"first_response_hours": 1, "resolution_hours": 1})
        tight = await get(client, cid)
        assert tight["sla"]["resolution_breached"] is True
        assert ts(tight["sla"]["resolution_due_at"]) == received + H
        listed = await client.get("/v1/complaints", params={"breached": "true"})
        assert cid in {x["id"] for x in listed.json()["items"]}

    async def test_severity_change_retimes(self, client: AsyncClient) -> None:
        acme = await create_client(client)
        received = now() - 2 * H
        complaint = await create_complaint(client, acme["id"], received_at=received.isoformat())
        patched = await client.patch(f"/v1/complaints/{complaint['id']}", json={"severity": "low"})
        assert patched.status_code == 200, patched.text
        sla = patched.json()["sla"]
        assert (sla["first_response_hours"], sla["resolution_hours"]) == (48, 240)
        assert ts(sla["first_response_due_at"]) == received + 48 * H
        assert patched.json()["breached"] is False

    async def test_segment_policy_wins_over_the_default(self, client: AsyncClient) -> None:
        key = await create_client(client, segment="key")
        small = await create_client(client, segment="small")
        created = await client.post(
            "/v1/sla-policies",
            json={
                "severity": "critical",
                "segment": "key",
                "first_response_hours": 2,
                "resolution_hours": 12,
            },
        )
        assert created.status_code == 201, created.text
        policy = created.json()
        assert policy["segment"] == "key"
        received = now() - timedelta(minutes=90)
        at_key = await create_complaint(client, key["id"], received_at=received.isoformat())
        at_small = await create_complaint(client, small["id"], received_at=received.isoformat())
        assert (at_key["sla"]["first_response_hours"], at_key["sla"]["resolution_hours"]) == (2, 12)
        assert at_key["sla"]["first_response_breached"] is False
        assert ts(at_key["sla"]["resolution_due_at"]) == received + 12 * H
        assert (at_small["sla"]["first_response_hours"], at_small["sla"]["resolution_hours"]) == (
            1,
            24,
        )
        assert at_small["sla"]["first_response_breached"] is True
        breached = await client.get("/v1/complaints", params={"breached": "true"})
        assert {x["id"] for x in breached.json()["items"]} == {at_small["id"]}
        # Another severity of the same segment still uses its default.
        high = await create_complaint(client, key["id"], severity="high")
        assert high["sla"]["first_response_hours"] == 4

        deleted = await client.delete(f"/v1/sla-policies/{policy['id']}")
        assert deleted.status_code == 204, deleted.text
        fallback = await get(client, at_key["id"])
        assert fallback["sla"]["first_response_hours"] == 1
        assert fallback["sla"]["first_response_breached"] is True

    async def test_deleting_a_default_policy_is_409(self, client: AsyncClient) -> None:
        for (_severity, segment), policy in (await policies(client)).items():
            assert segment is None
            response = await client.delete(f"/v1/sla-policies/{policy['id']}")
            assert_problem(response, 409)
        assert len(await policies(client)) == 4

    async def test_policy_validation(self, client: AsyncClient) -> None:
        body = {"severity": "low", "segment": "small", "first_response_hours": 5}
        r = await client.post("/v1/sla-policies", json=body | {"resolution_hours": 4})
        assert_invalid(r, "body.resolution_hours")
        r = await client.post("/v1/sla-policies", json=body | {"resolution_hours": 0})
        assert_invalid(r, "body.resolution_hours")
        r = await client.post("/v1/sla-policies", json=body | {"resolution_hours": 50})
        assert r.status_code == 201, r.text
        again = await client.post("/v1/sla-policies", json=body | {"resolution_hours": 60})
        assert_problem(again, 409)
        default_again = await client.post(
            "/v1/sla-policies",
            json={"severity": "low", "first_response_hours": 1, "resolution_hours": 2},
        )
        assert_problem(default_again, 409)
        low = (await policies(client))[("low", None)]
        below = await client.patch(
            f"/v1/sla-policies/{low['id']}", json={"first_response_hours": 300}
        )
        assert_problem(below, 422)  # would put resolution (240) below first response

    async def test_only_admins_change_policies(
        self, client: AsyncClient, settings: Settings
    ) -> None:
        low = (await policies(client))[("low", None)]
        headers = {"Authorization": f"Bearer {make_token(settings, Role.sales_manager)}"}
        r = await client.patch(
            f"/v1/sla-policies/{low['id']}", json={"first_response_hours": 2}, headers=headers
        )
        assert_problem(r, 403)
        r = await client.post(
            "/v1/sla-policies",
            json={
                "severity": "low",
                "segment": "key",
                "first_response_hours": 1,
                "resolution_hours": 2,
            },
            headers=headers,
        )
        assert_problem(r, 403)
        r = await client.get("/v1/sla-policies", headers=headers)
        assert r.status_code == 200

    async def test_stale_if_match_is_412(self, client: AsyncClient) -> None:
        low = (await policies(client))[("low", None)]
        url = f"/v1/sla-policies/{low['id']}"
        etag = (await client.get(url)).headers["ETag"]
        ok = await client.patch(url, json={"first_response_hours": 47}, headers={"If-Match": etag})
        assert ok.status_code == 200, ok.text
        stale = await client.patch(
            url, json={"first_response_hours": 46}, headers={"If-Match": etag}
        )
        assert_problem(stale, 412)


class TestBreachedFilter:
    async def test_breached_true_returns_exactly_the_breached(self, client: AsyncClient) -> None:
        acme = await create_client(client)
        t = now()
        m = timedelta(minutes=1)

        async def complaint(
            received: datetime, steps: list[tuple[str, datetime]], severity: str = "critical"
        ) -> str:
            made = await create_complaint(
                client, acme["id"], severity=severity, received_at=received.isoformat()
            )
            await walk(client, made["id"], steps)
            return str(made["id"])

        r30 = t - 30 * H
        breached = {
            # open for 2 h: first response late
            await complaint(t - 2 * H, []),
            # high, open for 5 h (target 4 h)
            await complaint(t - 5 * H, [], severity="high"),
            # answered in time, running 30 h > 24 h
            await complaint(r30, [("acknowledged", r30 + 10 * m), ("in_progress", r30 + H)]),
            # paused after 25 h active
            await complaint(
                r30,
                [
                    ("acknowledged", r30 + 10 * m),
                    ("in_progress", r30 + H),
                    ("waiting_on_client", r30 + 25 * H),
                ],
            ),
            # answered late, then resolved in time
            await complaint(
                r30,
                [
                    ("acknowledged", r30 + 2 * H),
                    ("in_progress", r30 + 3 * H),
                    ("resolved", r30 + 4 * H),
                ],
            ),
        }
        in_time = {
            await complaint(t - 30 * m, []),
            await complaint(t - 3 * H, [], severity="low"),
            # resolved within the target, then closed
            await complaint(
                r30,
                [
                    ("acknowledged", r30 + 10 * m),
                    ("in_progress", r30 + H),
                    ("resolved", r30 + 2 * H),
                    ("closed", r30 + 3 * H),
                ],
            ),
            # paused since 1 h of activity: 29 h waiting do not count
            await complaint(
                r30,
                [
                    ("acknowledged", r30 + 10 * m),
                    ("in_progress", r30 + 30 * m),
                    ("waiting_on_client", r30 + H),
                ],
            ),
        }

        async def all_pages(**params: Any) -> list[dict[str, Any]]:
            found: list[dict[str, Any]] = []
            cursor: str | None = None
            while True:
                query: dict[str, Any] = {"limit": 1, **params}
                if cursor:
                    query["cursor"] = cursor
                response = await client.get("/v1/complaints", params=query)
                assert response.status_code == 200, response.text
                page = response.json()
                # One row per page even though most rows are filtered out: the filter
                # is applied before the LIMIT, in SQL.
                assert len(page["items"]) == 1 or (not page["items"] and not found)
                found += page["items"]
                cursor = page["next_cursor"]
                if cursor is None:
                    return found

        yes = await all_pages(breached="true")
        no = await all_pages(breached="false")
        assert {x["id"] for x in yes} == breached
        assert {x["id"] for x in no} == in_time
        assert len(yes) == len(breached)
        assert all(x["breached"] for x in yes)
        assert not any(x["breached"] for x in no)
        for x in yes:
            assert x["sla"]["first_response_breached"] or x["sla"]["resolution_breached"]
        everything = await client.get("/v1/complaints", params={"limit": 500})
        assert {x["id"] for x in everything.json()["items"] if x["breached"]} == breached
        combined = await client.get(
            "/v1/complaints", params={"breached": "true", "severity": "high"}
        )
        assert len(combined.json()["items"]) == 1
