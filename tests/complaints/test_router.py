"""HTTP behaviour of complaints: the status machine (all 36 status pairs), its history,
reopening, the assignee default and the details that can and cannot change.

Every test runs in the ``client`` fixture's rolled-back transaction.
"""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient

from app.config import Settings
from app.core.auth import Role
from tests.assertions import assert_invalid, assert_problem
from tests.conftest import make_token
from tests.factories import (
    create_assignment,
    create_client,
    create_complaint,
    create_manager,
    move_complaint,
)

STATUSES = ("open", "acknowledged", "in_progress", "waiting_on_client", "resolved", "closed")
# The machine of issue 4, written out independently of the app's own table.
ALLOWED: dict[str, set[str]] = {
    "open": {"acknowledged"},
    "acknowledged": {"in_progress"},
    "in_progress": {"waiting_on_client", "resolved"},
    "waiting_on_client": {"in_progress", "resolved"},
    "resolved": {"closed", "in_progress"},
    "closed": set(),
}
# How to reach each status from ``open`` by legal moves only.
PATH: dict[str, tuple[str, ...]] = {
    "open": (),
    "acknowledged": ("acknowledged",),
    "in_progress": ("acknowledged", "in_progress"),
    "waiting_on_client": ("acknowledged", "in_progress", "waiting_on_client"),
    "resolved": ("acknowledged", "in_progress", "resolved"),
    "closed": ("acknowledged", "in_progress", "resolved", "closed"),
}


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def now() -> datetime:
    return datetime.now(UTC)


async def complaint_in(http: AsyncClient, status: str, **fields: Any) -> dict[str, Any]:
    """A new complaint walked to ``status`` by legal transitions."""
    client = await create_client(http)
    complaint = await create_complaint(http, client["id"], **fields)
    for to in PATH[status]:
        complaint = (await move_complaint(http, complaint["id"], to))["complaint"]
    assert complaint["status"] == status
    return complaint


async def history(http: AsyncClient, complaint_id: str, **params: Any) -> list[dict[str, Any]]:
    response = await http.get(
        f"/v1/complaints/{complaint_id}/history", params={"limit": 500, **params}
    )
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


class TestStatusMachine:
    @pytest.mark.parametrize(
        ("current", "to"),
        list(itertools.product(STATUSES, STATUSES)),
        ids=[f"{a}->{b}" for a, b in itertools.product(STATUSES, STATUSES)],
    )
    async def test_every_status_pair(self, client: AsyncClient, current: str, to: str) -> None:
        complaint = await complaint_in(client, current)
        before = await history(client, complaint["id"])
        body: dict[str, Any] = {"to": to, "note": f"{current} to {to}"}
        if to == "resolved":
            body["resolution"] = "Replacement shipped."  # so only legality decides
        response = await client.post(f"/v1/complaints/{complaint['id']}/transitions", json=body)
        after = await client.get(f"/v1/complaints/{complaint['id']}")
        if to in ALLOWED[current]:
            assert response.status_code == 201, response.text
            moved = response.json()
            assert (moved["from_status"], moved["to_status"]) == (current, to)
            assert moved["complaint"]["status"] == to
            assert after.json()["status"] == to
            assert len(await history(client, complaint["id"])) == len(before) + 1
        else:
            problem = assert_problem(response, 409)
            assert sorted(problem["allowed"]) == sorted(ALLOWED[current]), problem
            assert problem["current_status"] == current
            assert after.json()["status"] == current
            assert after.json()["version"] == complaint["version"]
            assert await history(client, complaint["id"]) == before

    async def test_closed_is_final(self, client: AsyncClient) -> None:
        complaint = await complaint_in(client, "closed")
        for to in STATUSES:
            response = await client.post(
                f"/v1/complaints/{complaint['id']}/transitions", json={"to": to}
            )
            assert assert_problem(response, 409)["allowed"] == []

    async def test_unknown_status_is_422(self, client: AsyncClient) -> None:
        complaint = await complaint_in(client, "open")
        response = await client.post(
            f"/v1/complaints/{complaint['id']}/transitions", json={"to": "escalated"}
        )
        assert_invalid(response, "body.to")

    async def test_unknown_complaint_is_404(self, client: AsyncClient) -> None:
        response = await client.post(
            "/v1/complaints/00000000-0000-0000-0000-000000000000/transitions",
            json={"to": "acknowledged"},
        )
        assert_problem(response, 404)

    @pytest.mark.parametrize("current", ["in_progress", "waiting_on_client"])
    async def test_resolving_needs_a_resolution_text(
        self, client: AsyncClient, current: str
    ) -> None:
        complaint = await complaint_in(client, current)
        url = f"/v1/complaints/{complaint['id']}/transitions"
        for body in (
            {"to": "resolved", "root_cause": "Bad batch"},
            {"to": "resolved", "resolution": "   "},
        ):
            assert_invalid(await client.post(url, json=body), "body.resolution")
        still = (await client.get(f"/v1/complaints/{complaint['id']}")).json()
        assert (still["status"], still["resolution"], still["root_cause"]) == (current, None, None)
        assert still["version"] == complaint["version"]
        done = await client.post(url, json={"to": "resolved", "resolution": "Credit note sent."})
        assert done.status_code == 201, done.text
        assert done.json()["complaint"]["resolution"] == "Credit note sent."
        assert done.json()["complaint"]["resolved_at"] == done.json()["at"]

    async def test_resolution_set_earlier_by_patch_is_enough(self, client: AsyncClient) -> None:
        complaint = await complaint_in(client, "in_progress")
        patched = await client.patch(
            f"/v1/complaints/{complaint['id']}", json={"resolution": "Refunded."}
        )
        assert patched.status_code == 200, patched.text
        moved = await move_complaint(client, complaint["id"], "resolved", resolution=None)
        assert moved["complaint"]["resolution"] == "Refunded."

    async def test_status_cannot_be_patched(self, client: AsyncClient) -> None:
        complaint = await complaint_in(client, "open")
        response = await client.patch(
            f"/v1/complaints/{complaint['id']}", json={"status": "closed"}
        )
        assert_problem(response, 422)
        assert (await client.get(f"/v1/complaints/{complaint['id']}")).json()["status"] == "open"

    async def test_viewer_cannot_transition(self, client: AsyncClient, settings: Settings) -> None:
        complaint = await complaint_in(client, "open")
        viewer = make_token(settings, Role.viewer)
        response = await client.post(
            f"/v1/complaints/{complaint['id']}/transitions",
            json={"to": "acknowledged"},
            headers={"Authorization": f"Bearer {viewer}"},
        )
        assert_problem(response, 403)

    async def test_backfilled_at_must_follow_the_previous_transition(
        self, client: AsyncClient
    ) -> None:
        received = now() - timedelta(hours=5)
        complaint = await complaint_in(client, "open", received_at=received.isoformat())
        url = f"/v1/complaints/{complaint['id']}/transitions"
        early = received - timedelta(microseconds=1)
        assert_invalid(
            await client.post(url, json={"to": "acknowledged", "at": early.isoformat()}), "body.at"
        )
        ahead = now() + timedelta(minutes=6)
        assert_invalid(
            await client.post(url, json={"to": "acknowledged", "at": ahead.isoformat()}), "body.at"
        )
        same = await client.post(url, json={"to": "acknowledged", "at": received.isoformat()})
        assert same.status_code == 201, same.text
        assert ts(same.json()["at"]) == received


class TestConcurrencyAndReplay:
    async def test_concurrent_transitions_apply_one_after_the_other(
        self, live_client: AsyncClient
    ) -> None:
        acme = await create_client(live_client)
        complaint = await create_complaint(live_client, acme["id"])
        url = f"/v1/complaints/{complaint['id']}/transitions"
        responses = await asyncio.gather(
            *(live_client.post(url, json={"to": "acknowledged"}) for _ in range(8))
        )
        codes = sorted(r.status_code for r in responses)
        assert codes == [201] + [409] * 7, [r.text for r in responses]
        for refused in (r for r in responses if r.status_code == 409):
            assert refused.json()["allowed"] == ["in_progress"]
        assert [h["to_status"] for h in await history(live_client, complaint["id"])] == [
            "open",
            "acknowledged",
        ]

    async def test_idempotent_transition_is_applied_once(self, client: AsyncClient) -> None:
        complaint = await complaint_in(client, "open")
        url = f"/v1/complaints/{complaint['id']}/transitions"
        headers = {"Idempotency-Key": "ack-once"}
        first = await client.post(url, json={"to": "acknowledged"}, headers=headers)
        again = await client.post(url, json={"to": "acknowledged"}, headers=headers)
        assert first.status_code == again.status_code == 201, again.text
        assert again.headers.get("Idempotent-Replayed") == "true"
        assert again.json()["id"] == first.json()["id"]
        assert len(await history(client, complaint["id"])) == 2
        other = await client.post(url, json={"to": "in_progress"}, headers=headers)
        assert_problem(other, 422)


class TestReopen:
    async def test_reopen_restarts_the_clock_and_clears_resolved_at(
        self, client: AsyncClient
    ) -> None:
        received = now() - timedelta(hours=10)
        complaint = await complaint_in(client, "open", received_at=received.isoformat())
        cid = complaint["id"]
        steps = [
            ("acknowledged", received + timedelta(minutes=30)),
            ("in_progress", received + timedelta(hours=1)),
            ("resolved", received + timedelta(hours=3)),
        ]
        for to, at in steps:
            await move_complaint(client, cid, to, at=at.isoformat())
        resolved = (await client.get(f"/v1/complaints/{cid}")).json()
        assert ts(resolved["resolved_at"]) == received + timedelta(hours=3)
        assert resolved["sla"]["clock"] == "stopped"
        assert resolved["sla"]["resolution_due_at"] is None

        reopened_at = received + timedelta(hours=7)  # 4 h stopped: not counted
        reopened = (
            await move_complaint(
                client, cid, "in_progress", at=reopened_at.isoformat(), note="Again"
            )
        )["complaint"]
        assert reopened["status"] == "in_progress"
        assert reopened["resolved_at"] is None
        assert reopened["resolution"] == "Fixed."  # kept for the record
        assert reopened["sla"]["clock"] == "running"
        # 3 h of the 24 h critical target were used before the resolution.
        assert ts(reopened["sla"]["resolution_due_at"]) == reopened_at + timedelta(hours=21)
        assert ts(reopened["sla"]["first_responded_at"]) == received + timedelta(minutes=30)

        again = await move_complaint(client, cid, "resolved", resolution="Fixed for good.")
        assert again["complaint"]["resolution"] == "Fixed for good."
        closed = await move_complaint(client, cid, "closed")
        assert closed["complaint"]["status"] == "closed"
        assert closed["complaint"]["sla"]["clock"] == "stopped"
        assert [(h["from_status"], h["to_status"]) for h in await history(client, cid)] == [
            (None, "open"),
            ("open", "acknowledged"),
            ("acknowledged", "in_progress"),
            ("in_progress", "resolved"),
            ("resolved", "in_progress"),
            ("in_progress", "resolved"),
            ("resolved", "closed"),
        ]


class TestHistory:
    async def test_every_transition_with_actor_time_and_note(
        self, client: AsyncClient, settings: Settings
    ) -> None:
        anna = await create_manager(client)
        acme = await create_client(client)
        received = now() - timedelta(days=2)
        complaint = await create_complaint(client, acme["id"], received_at=received.isoformat())
        cid = complaint["id"]
        # Anna must be assigned to the client now to act on its complaints (issue 7).
        await create_assignment(client, acme["id"], anna["id"], starts_at="2026-01-01T00:00:00Z")
        anna_token = make_token(settings, Role.account_manager, subject=anna["id"])
        as_anna = {"Authorization": f"Bearer {anna_token}"}
        plan = [
            ("acknowledged", received + timedelta(hours=1), "Seen", as_anna),
            ("in_progress", received + timedelta(hours=1), None, {}),  # same instant
            ("waiting_on_client", received + timedelta(hours=5), "Asked for photos", as_anna),
        ]
        for to, at, note, headers in plan:
            body: dict[str, Any] = {"to": to, "at": at.isoformat()}
            if note:
                body["note"] = note
            response = await client.post(
                f"/v1/complaints/{cid}/transitions", json=body, headers=headers
            )
            assert response.status_code == 201, response.text
        items = await history(client, cid)
        assert [
            (h["from_status"], h["to_status"], ts(h["at"]), h["actor"], h["note"]) for h in items
        ] == [
            (None, "open", received, "test-admin", None),
            ("open", "acknowledged", received + timedelta(hours=1), anna["id"], "Seen"),
            ("acknowledged", "in_progress", received + timedelta(hours=1), "test-admin", None),
            (
                "in_progress",
                "waiting_on_client",
                received + timedelta(hours=5),
                anna["id"],
                "Asked for photos",
            ),
        ]
        assert all(h["complaint_id"] == cid for h in items)
        paged: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 1}
            if cursor:
                params["cursor"] = cursor
            page = await client.get(f"/v1/complaints/{cid}/history", params=params)
            assert page.status_code == 200, page.text
            paged += page.json()["items"]
            cursor = page.json()["next_cursor"]
            if cursor is None:
                break
        assert paged == items

    async def test_history_of_unknown_complaint_is_404(self, client: AsyncClient) -> None:
        response = await client.get("/v1/complaints/00000000-0000-0000-0000-000000000000/history")
        assert_problem(response, 404)


class TestCreate:
    async def test_fields_round_trip(self, client: AsyncClient) -> None:
        acme = await create_client(client)
        anna = await create_manager(client)
        received = datetime(2026, 11, 2, 9, 30, 15, 123456, tzinfo=UTC)
        body = {
            "client_id": acme["id"],
            "title": "Számla hibás — فاتورة خاطئة 42",
            "description": "Line 1\nשורה 2 עם 7 פריטים",
            "category": "billing",
            "severity": "high",
            "channel": "email",
            "received_at": received.isoformat(),
            "assignee_id": anna["id"],
            "root_cause": "Wrong VAT rate",
        }
        response = await client.post("/v1/complaints", json=body)
        assert response.status_code == 201, response.text
        created = response.json()
        got = await client.get(f"/v1/complaints/{created['id']}")
        assert got.status_code == 200
        assert got.headers["ETag"]
        for data in (created, got.json()):
            for key in ("client_id", "title", "description", "category", "severity", "channel"):
                assert data[key] == body[key]
            assert ts(data["received_at"]) == received
            assert data["assignee_id"] == anna["id"]
            assert data["status"] == "open"
            assert data["resolution"] is None
            assert data["resolved_at"] is None
            assert data["sla"]["first_response_hours"] == 4
            assert data["sla"]["resolution_hours"] == 72

    async def test_received_at_in_the_future(self, client: AsyncClient) -> None:
        acme = await create_client(client)
        late = {"received_at": (now() + timedelta(minutes=6)).isoformat()}
        response = await client.post(
            "/v1/complaints",
            json={"client_id": acme["id"], "title": "x", "category": "other", "severity": "low"}
            | late,
        )
        assert_invalid(response, "body.received_at")
        await create_complaint(
            client, acme["id"], received_at=(now() + timedelta(minutes=4)).isoformat()
        )

    async def test_unknown_client_or_assignee(self, client: AsyncClient) -> None:
        acme = await create_client(client)
        missing = "00000000-0000-0000-0000-000000000001"
        base = {"title": "x", "category": "other", "severity": "low"}
        r = await client.post("/v1/complaints", json=base | {"client_id": missing})
        assert_invalid(r, "body.client_id")
        r = await client.post(
            "/v1/complaints", json=base | {"client_id": acme["id"], "assignee_id": missing}
        )
        assert_invalid(r, "body.assignee_id")


class TestAssigneeDefault:
    async def test_defaults_to_the_primary(self, client: AsyncClient) -> None:
        anna = await create_manager(client)
        acme = await create_client(client)
        await create_assignment(client, acme["id"], anna["id"], starts_at="2026-01-01T00:00:00Z")
        complaint = await create_complaint(client, acme["id"])
        assert complaint["assignee_id"] == anna["id"]

    async def test_cover_during_absence_wins(self, client: AsyncClient) -> None:
        anna = await create_manager(client)
        bela = await create_manager(client)
        acme = await create_client(client)
        await create_assignment(client, acme["id"], anna["id"], starts_at="2026-01-01T00:00:00Z")
        absence = await client.post(
            f"/v1/managers/{anna['id']}/absences",
            json={
                "starts_at": "2026-08-01T00:00:00+02:00",
                "ends_at": "2026-08-15T00:00:00+02:00",
                "cover_manager_id": bela["id"],
            },
        )
        assert absence.status_code == 201, absence.text
        during = await create_complaint(client, acme["id"], received_at="2026-08-10T12:00:00+02:00")
        assert during["assignee_id"] == bela["id"]
        first_instant = await create_complaint(
            client, acme["id"], received_at="2026-08-01T00:00:00+02:00"
        )
        assert first_instant["assignee_id"] == bela["id"]
        at_end = await create_complaint(client, acme["id"], received_at="2026-08-15T00:00:00+02:00")
        assert at_end["assignee_id"] == anna["id"]  # half-open: the cover has ended
        before = await create_complaint(client, acme["id"], received_at="2026-07-31T23:59:59+02:00")
        assert before["assignee_id"] == anna["id"]

    async def test_secondary_is_not_responsible(self, client: AsyncClient) -> None:
        anna = await create_manager(client)
        bela = await create_manager(client)
        acme = await create_client(client)
        await create_assignment(client, acme["id"], anna["id"], starts_at="2026-01-01T00:00:00Z")
        await create_assignment(
            client, acme["id"], bela["id"], role="secondary", starts_at="2026-01-01T00:00:00Z"
        )
        assert (await create_complaint(client, acme["id"]))["assignee_id"] == anna["id"]

    async def test_unassigned_client_or_explicit_assignee(self, client: AsyncClient) -> None:
        anna = await create_manager(client)
        bela = await create_manager(client)
        acme = await create_client(client)
        assert (await create_complaint(client, acme["id"]))["assignee_id"] is None
        await create_assignment(client, acme["id"], anna["id"], starts_at="2026-01-01T00:00:00Z")
        explicit = await create_complaint(client, acme["id"], assignee_id=bela["id"])
        assert explicit["assignee_id"] == bela["id"]
        before_primary = await create_complaint(
            client, acme["id"], received_at="2025-12-31T23:00:00Z"
        )
        assert before_primary["assignee_id"] is None


class TestList:
    async def test_filters(self, client: AsyncClient) -> None:
        acme = await create_client(client)
        other = await create_client(client)
        a = await create_complaint(client, acme["id"], severity="low", category="billing")
        b = await create_complaint(client, acme["id"], severity="high", category="product")
        await move_complaint(client, b["id"], "acknowledged")
        c = await create_complaint(client, other["id"], severity="low", category="product")

        async def ids(**params: Any) -> set[str]:
            response = await client.get("/v1/complaints", params=params)
            assert response.status_code == 200, response.text
            return {x["id"] for x in response.json()["items"]}

        # (Rows made in one test share created_at: the transaction's now(); compare sets.)
        assert await ids(client_id=acme["id"]) == {a["id"], b["id"]}
        assert await ids(severity="low") == {a["id"], c["id"]}
        assert await ids(status="acknowledged") == {b["id"]}
        assert await ids(category="product", client_id=acme["id"]) == {b["id"]}
        assert_invalid(
            await client.get("/v1/complaints", params={"status": "nope"}), "query.status"
        )
