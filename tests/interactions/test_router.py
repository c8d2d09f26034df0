"""HTTP behaviour of ``/v1/interactions``: CRUD, who may log a contact and when, the
future-time limit, list filters and exact Unicode round trips.

Every test runs in the ``client`` fixture's rolled-back transaction (so rows made in one
test share ``created_at``: list order is compared as sets where that matters).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.config import Settings
from app.core.auth import Role
from tests.assertions import assert_invalid, assert_problem
from tests.conftest import make_token
from tests.factories import create_assignment, create_client, create_interaction, create_manager

CHANNELS = (
    "email",
    "phone",
    "video_call",
    "meeting",
    "presentation",
    "screen_share",
    "chat",
    "event",
    "other",
)
RTL_NOTES = (
    "שלום 123 עולם\n"
    "مرحبا 456 عالم\n"
    "\u200fמחיר: 1,250.50 ₪ (הנחה 15%)\u200f\n"  # RLM marks kept
    "السعر ٤٥٦٫٧٨ درهم — رقم الطلب 2026-10-25\n"  # Arabic-Indic digits
    "שָׁלוֹם with niqqud, \u202bembedded RLE\u202c, emoji 👩🏽‍💼 and tab\there"
)


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def now() -> datetime:
    return datetime.now(UTC)


def bearer(settings: Settings, role: Role, subject: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token(settings, role, subject=subject)}"}


def body(client_id: str, **fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "client_id": client_id,
        "channel": "meeting",
        "direction": "inbound",
        "occurred_at": now().isoformat(),
        "subject": "Quarterly review",
    }
    data.update(fields)
    return data


async def listed(http: AsyncClient, **params: Any) -> set[str]:
    response = await http.get("/v1/interactions", params={"limit": 500, **params})
    assert response.status_code == 200, response.text
    return {x["id"] for x in response.json()["items"]}


class TestCrud:
    async def test_create_read_update_delete(self, client: AsyncClient) -> None:
        anna = await create_manager(client)
        acme = await create_client(client)
        occurred = datetime(2026, 11, 20, 14, 5, 7, 123456, tzinfo=UTC)
        due = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
        sent = body(
            acme["id"],
            manager_id=anna["id"],
            channel="video_call",
            direction="outbound",
            occurred_at=occurred.isoformat(),
            duration_minutes=45,
            subject="Renewal",
            notes="Discussed the renewal.",
            sentiment="positive",
            decisions=["Extend by 12 months", "Add 5 seats"],
            next_step={"description": "Send the offer", "due_at": due.isoformat()},
        )
        response = await client.post("/v1/interactions", json=sent)
        assert response.status_code == 201, response.text
        created = response.json()
        iid = created["id"]
        got = await client.get(f"/v1/interactions/{iid}")
        assert got.status_code == 200
        for data in (created, got.json()):
            for key in (
                "client_id",
                "manager_id",
                "channel",
                "direction",
                "duration_minutes",
                "subject",
                "notes",
                "sentiment",
                "decisions",
            ):
                assert data[key] == sent[key], key
            assert ts(data["occurred_at"]) == occurred
            assert data["next_step"]["description"] == "Send the offer"
            assert ts(data["next_step"]["due_at"]) == due
            assert data["next_step"]["done"] is False
            assert data["version"] == 1
        etag = got.headers["ETag"]

        done = await client.patch(
            f"/v1/interactions/{iid}",
            json={"next_step": {"description": "Send the offer", "due_at": None, "done": True}},
            headers={"If-Match": etag},
        )
        assert done.status_code == 200, done.text
        assert done.json()["next_step"] == {
            "description": "Send the offer",
            "due_at": None,
            "done": True,
        }
        assert done.json()["version"] == 2
        stale = await client.patch(
            f"/v1/interactions/{iid}", json={"subject": "x"}, headers={"If-Match": etag}
        )
        assert_problem(stale, 412)
        cleared = await client.patch(f"/v1/interactions/{iid}", json={"next_step": None})
        assert cleared.status_code == 200, cleared.text
        assert cleared.json()["next_step"] is None
        assert cleared.json()["decisions"] == sent["decisions"]  # untouched

        deleted = await client.delete(f"/v1/interactions/{iid}")
        assert deleted.status_code == 204, deleted.text
        assert_problem(await client.get(f"/v1/interactions/{iid}"), 404)
        assert_problem(await client.delete(f"/v1/interactions/{iid}"), 404)

    @pytest.mark.parametrize(
        ("next_step", "expected_due", "expected_done"),
        [
            ({"description": "Call back", "done": True}, None, True),
            ({"description": "Call back", "due_at": "2026-12-01T09:00:00Z"}, "2026-12-01", False),
            ({"description": "Call back"}, None, False),
        ],
        ids=["without-due_at", "without-done", "description-only"],
    )
    async def test_patch_next_step_with_defaults(
        self,
        client: AsyncClient,
        next_step: dict[str, Any],
        expected_due: str | None,
        expected_done: bool,
    ) -> None:
        """``next_step`` is replaced whole: omitted members take their defaults (no due
        time, not done), exactly as on create."""
        anna = await create_manager(client)
        acme = await create_client(client)
        made = await create_interaction(
            client,
            acme["id"],
            anna["id"],
            next_step={"description": "Old", "due_at": "2026-11-01T00:00:00Z", "done": True},
        )
        response = await client.patch(
            f"/v1/interactions/{made['id']}", json={"next_step": next_step}
        )
        assert response.status_code == 200, response.text
        step = response.json()["next_step"]
        assert step["description"] == "Call back"
        assert step["done"] is expected_done
        if expected_due is None:
            assert step["due_at"] is None
        else:
            assert step["due_at"].startswith(expected_due)

    @pytest.mark.parametrize("channel", CHANNELS)
    async def test_every_channel(self, client: AsyncClient, channel: str) -> None:
        anna = await create_manager(client)
        acme = await create_client(client)
        made = await create_interaction(client, acme["id"], anna["id"], channel=channel)
        assert made["channel"] == channel
        assert made["decisions"] == []
        assert made["next_step"] is None

    @pytest.mark.parametrize(
        ("fields", "field"),
        [
            ({"channel": "fax"}, "body.channel"),
            ({"direction": "sideways"}, "body.direction"),
            ({"duration_minutes": -1}, "body.duration_minutes"),
            ({"sentiment": "furious"}, "body.sentiment"),
            ({"occurred_at": "2026-11-01T10:00:00"}, "body.occurred_at"),  # no offset
            ({"subject": "   "}, "body.subject"),
            ({"decisions": [""]}, "body.decisions.0"),
            ({"next_step": {"due_at": "2026-12-01T00:00:00Z"}}, "body.next_step.description"),
            ({"unknown": 1}, "body.unknown"),
        ],
    )
    async def test_invalid_fields(
        self, client: AsyncClient, fields: dict[str, Any], field: str
    ) -> None:
        anna = await create_manager(client)
        acme = await create_client(client)
        response = await client.post(
            "/v1/interactions", json=body(acme["id"], manager_id=anna["id"], **fields)
        )
        assert_invalid(response, field)

    async def test_zero_duration_is_fine(self, client: AsyncClient) -> None:
        anna = await create_manager(client)
        acme = await create_client(client)
        made = await create_interaction(client, acme["id"], anna["id"], duration_minutes=0)
        assert made["duration_minutes"] == 0

    async def test_unknown_or_archived_client_and_unknown_manager(
        self, client: AsyncClient
    ) -> None:
        anna = await create_manager(client)
        acme = await create_client(client)
        missing = "00000000-0000-0000-0000-000000000002"
        r = await client.post("/v1/interactions", json=body(missing, manager_id=anna["id"]))
        assert_invalid(r, "body.client_id")
        r = await client.post("/v1/interactions", json=body(acme["id"], manager_id=missing))
        assert_invalid(r, "body.manager_id")
        archived = await client.post(f"/v1/clients/{acme['id']}/archive")
        assert archived.status_code in (200, 204), archived.text
        r = await client.post("/v1/interactions", json=body(acme["id"], manager_id=anna["id"]))
        assert_invalid(r, "body.client_id")


class TestUnicode:
    async def test_rtl_notes_round_trip_exactly(
        self, client: AsyncClient, connection: AsyncConnection
    ) -> None:
        anna = await create_manager(client)
        acme = await create_client(client)
        subject = "פגישה 7 — اجتماع 8"
        decisions = ["להגדיל ב־20%", "تمديد العقد 12 شهرا"]
        made = await create_interaction(
            client,
            acme["id"],
            anna["id"],
            notes=RTL_NOTES,
            subject=subject,
            decisions=decisions,
            next_step={"description": "שלום 123 עולם / مرحبا 456 عالم"},
        )
        got = (await client.get(f"/v1/interactions/{made['id']}")).json()
        page = await client.get("/v1/interactions", params={"client_id": acme["id"]})
        (from_list,) = page.json()["items"]
        for data in (made, got, from_list):
            assert data["notes"] == RTL_NOTES
            assert data["subject"] == subject
            assert data["decisions"] == decisions
            assert data["next_step"]["description"] == "שלום 123 עולם / مرحبا 456 عالم"
        stored = (
            await connection.execute(
                text("SELECT notes FROM interactions WHERE id = :id"), {"id": made["id"]}
            )
        ).scalar_one()
        assert stored == RTL_NOTES
        assert stored.encode() == RTL_NOTES.encode()  # same code points, no normalisation

    @pytest.mark.parametrize("notes", ["שלום 123 עולם", "مرحبا 456 عالم"])
    async def test_the_plain_examples(self, client: AsyncClient, notes: str) -> None:
        anna = await create_manager(client)
        acme = await create_client(client)
        made = await create_interaction(client, acme["id"], anna["id"], notes=notes)
        assert (await client.get(f"/v1/interactions/{made['id']}")).json()["notes"] == notes


class TestFutureLimit:
    async def test_more_than_five_minutes_ahead_is_422(self, client: AsyncClient) -> None:
        anna = await create_manager(client)
        acme = await create_client(client)
        ahead = now() + timedelta(minutes=6)
        r = await client.post(
            "/v1/interactions",
            json=body(acme["id"], manager_id=anna["id"], occurred_at=ahead.isoformat()),
        )
        assert_invalid(r, "body.occurred_at")
        soon = now() + timedelta(minutes=4)
        made = await create_interaction(
            client, acme["id"], anna["id"], occurred_at=soon.isoformat()
        )
        assert ts(made["occurred_at"]) == soon
        moved = await client.patch(
            f"/v1/interactions/{made['id']}",
            json={"occurred_at": (now() + timedelta(hours=1)).isoformat()},
        )
        assert_invalid(moved, "body.occurred_at")

    async def test_four_minutes_ahead_for_an_assigned_manager(
        self, client: AsyncClient, settings: Settings
    ) -> None:
        anna = await create_manager(client)
        acme = await create_client(client)
        await create_assignment(client, acme["id"], anna["id"], starts_at="2026-01-01T00:00:00Z")
        soon = now() + timedelta(minutes=4)
        r = await client.post(
            "/v1/interactions",
            json=body(acme["id"], occurred_at=soon.isoformat()),
            headers=bearer(settings, Role.account_manager, anna["id"]),
        )
        assert r.status_code == 201, r.text


class TestWhoMayLog:
    async def test_manager_defaults_to_the_caller(
        self, client: AsyncClient, settings: Settings
    ) -> None:
        anna = await create_manager(client)
        bela = await create_manager(client, role="sales_manager")
        acme = await create_client(client)
        await create_assignment(client, acme["id"], anna["id"], starts_at="2026-01-01T00:00:00Z")
        await create_assignment(
            client, acme["id"], bela["id"], role="secondary", starts_at="2026-01-01T00:00:00Z"
        )
        for manager, role in ((anna, Role.account_manager), (bela, Role.sales_manager)):
            r = await client.post(
                "/v1/interactions",
                json=body(acme["id"]),
                headers=bearer(settings, role, manager["id"]),
            )
            assert r.status_code == 201, r.text
            assert r.json()["manager_id"] == manager["id"]
            assert r.json()["created_by"] == manager["id"]

    async def test_non_manager_must_name_the_manager(
        self, client: AsyncClient, settings: Settings
    ) -> None:
        acme = await create_client(client)
        r = await client.post("/v1/interactions", json=body(acme["id"]))  # admin
        assert_invalid(r, "body.manager_id")
        anna = await create_manager(client)
        await create_assignment(client, acme["id"], anna["id"], starts_at="2026-01-01T00:00:00Z")
        # A manager role whose subject is not a manager id is not "a manager": it sees no
        # client at all (issue 7 scoping), so the client does not exist for it.
        r = await client.post(
            "/v1/interactions",
            json=body(acme["id"]),
            headers=bearer(settings, Role.account_manager, "service-bot"),
        )
        assert_invalid(r, "body.client_id")
        viewer = await client.post(
            "/v1/interactions",
            json=body(acme["id"], manager_id=anna["id"]),
            headers=bearer(settings, Role.viewer, anna["id"]),
        )
        assert_problem(viewer, 403)

    async def test_account_manager_logs_only_as_themselves(
        self, client: AsyncClient, settings: Settings
    ) -> None:
        anna = await create_manager(client)
        bela = await create_manager(client)
        acme = await create_client(client)
        await create_assignment(client, acme["id"], anna["id"], starts_at="2026-01-01T00:00:00Z")
        await create_assignment(
            client, acme["id"], bela["id"], role="secondary", starts_at="2026-01-01T00:00:00Z"
        )
        r = await client.post(
            "/v1/interactions",
            json=body(acme["id"], manager_id=bela["id"]),
            headers=bearer(settings, Role.account_manager, anna["id"]),
        )
        assert_invalid(r, "body.manager_id")

    @pytest.mark.parametrize("role", [Role.account_manager, Role.sales_manager])
    async def test_manager_not_responsible_at_occurred_at(
        self, client: AsyncClient, settings: Settings, role: Role
    ) -> None:
        anna = await create_manager(client, role=role.value)
        acme = await create_client(client)
        await create_assignment(
            client,
            acme["id"],
            anna["id"],
            starts_at="2026-06-01T00:00:00Z",
            ends_at="2026-07-01T00:00:00Z",
        )
        # Assigned again from September: the client is in Anna's scope now (issue 7), but
        # not for the gap in between.
        await create_assignment(client, acme["id"], anna["id"], starts_at="2026-09-01T00:00:00Z")
        as_anna = bearer(settings, role, anna["id"])

        async def log(at: str, headers: dict[str, str] | None = None) -> Any:
            return await client.post(
                "/v1/interactions",
                json=body(acme["id"], manager_id=anna["id"], occurred_at=at),
                headers=headers or {},
            )

        for outside in (
            "2026-05-31T23:59:59.999999Z",
            "2026-07-01T00:00:00Z",
            "2026-08-31T23:00:00Z",
        ):
            assert_invalid(await log(outside, as_anna), "body.occurred_at")
        for inside in ("2026-06-01T00:00:00Z", "2026-06-15T12:00:00+02:00"):
            r = await log(inside, as_anna)
            assert r.status_code == 201, r.text
        # An admin may backfill for a manager who was not assigned then.
        backfill = await log("2026-05-15T10:00:00Z")
        assert backfill.status_code == 201, backfill.text
        assert backfill.json()["manager_id"] == anna["id"]

    async def test_unassigned_client_is_422_for_the_manager(
        self, client: AsyncClient, settings: Settings
    ) -> None:
        anna = await create_manager(client)
        acme = await create_client(client)
        r = await client.post(
            "/v1/interactions",
            json=body(acme["id"]),
            headers=bearer(settings, Role.account_manager, anna["id"]),
        )
        # Not assigned now, so outside Anna's scope: the client does not exist for her.
        assert_invalid(r, "body.client_id")

    @pytest.mark.parametrize("role", ["secondary", "cover"])
    async def test_secondary_and_cover_may_log(
        self, client: AsyncClient, settings: Settings, role: str
    ) -> None:
        anna = await create_manager(client)
        acme = await create_client(client)
        await create_assignment(
            client, acme["id"], anna["id"], role=role, starts_at="2026-01-01T00:00:00Z"
        )
        r = await client.post(
            "/v1/interactions",
            json=body(acme["id"]),
            headers=bearer(settings, Role.account_manager, anna["id"]),
        )
        assert r.status_code == 201, r.text

    async def test_cover_during_absence_may_log_then_not(
        self, client: AsyncClient, settings: Settings
    ) -> None:
        anna = await create_manager(client)
        bela = await create_manager(client)
        acme = await create_client(client)
        await create_assignment(client, acme["id"], anna["id"], starts_at="2026-01-01T00:00:00Z")
        # The window is running now, so Bela has the client in scope (issue 7).
        absence = await client.post(
            f"/v1/managers/{anna['id']}/absences",
            json={
                "starts_at": (now() - timedelta(days=10)).isoformat(),
                "ends_at": (now() + timedelta(days=5)).isoformat(),
                "cover_manager_id": bela["id"],
            },
        )
        assert absence.status_code == 201, absence.text
        as_bela = bearer(settings, Role.account_manager, bela["id"])
        ok = await client.post(
            "/v1/interactions",
            json=body(acme["id"], occurred_at=(now() - timedelta(days=5)).isoformat()),
            headers=as_bela,
        )
        assert ok.status_code == 201, ok.text
        before = await client.post(
            "/v1/interactions",
            json=body(acme["id"], occurred_at=(now() - timedelta(days=20)).isoformat()),
            headers=as_bela,
        )
        assert_invalid(before, "body.occurred_at")

    async def test_moving_occurred_at_outside_the_assignment(
        self, client: AsyncClient, settings: Settings
    ) -> None:
        anna = await create_manager(client)
        acme = await create_client(client)
        await create_assignment(
            client,
            acme["id"],
            anna["id"],
            starts_at="2026-06-01T00:00:00Z",
        )
        as_anna = bearer(settings, Role.account_manager, anna["id"])
        made = await client.post(
            "/v1/interactions",
            json=body(acme["id"], occurred_at="2026-06-10T10:00:00Z"),
            headers=as_anna,
        )
        assert made.status_code == 201, made.text
        url = f"/v1/interactions/{made.json()['id']}"
        moved = await client.patch(
            url, json={"occurred_at": "2026-05-10T10:00:00Z"}, headers=as_anna
        )
        assert_invalid(moved, "body.occurred_at")
        admin = await client.patch(url, json={"occurred_at": "2026-05-10T10:00:00Z"})
        assert admin.status_code == 200, admin.text


class TestFilters:
    async def test_client_manager_channel_and_period(self, client: AsyncClient) -> None:
        anna = await create_manager(client)
        bela = await create_manager(client)
        acme = await create_client(client)
        other = await create_client(client)

        async def log(client_id: str, manager_id: str, channel: str, at: str) -> str:
            made = await create_interaction(
                client, client_id, manager_id, channel=channel, occurred_at=at
            )
            return str(made["id"])

        a = await log(acme["id"], anna["id"], "email", "2026-10-01T00:00:00Z")
        b = await log(acme["id"], bela["id"], "phone", "2026-10-15T12:00:00Z")
        c = await log(other["id"], anna["id"], "phone", "2026-11-01T00:00:00Z")
        assert await listed(client, client_id=acme["id"]) == {a, b}
        assert await listed(client, manager_id=anna["id"]) == {a, c}
        assert await listed(client, channel="phone") == {b, c}
        assert await listed(client, channel="phone", manager_id=anna["id"]) == {c}
        # occurred_from is inclusive, occurred_to exclusive.
        assert await listed(
            client, occurred_from="2026-10-01T00:00:00Z", occurred_to="2026-11-01T00:00:00Z"
        ) == {a, b}
        assert await listed(client, occurred_from="2026-10-01T00:00:00.000001Z") == {b, c}
        assert await listed(client, occurred_to="2026-10-01T00:00:00Z") == set()
        assert await listed(client, occurred_from="2026-10-15T14:00:00+02:00") == {b, c}
        r = await client.get("/v1/interactions", params={"channel": "fax"})
        assert_invalid(r, "query.channel")
        r = await client.get("/v1/interactions", params={"occurred_from": "2026-10-01T00:00:00"})
        assert_invalid(r, "query.occurred_from")

    async def test_next_step_overdue(self, client: AsyncClient) -> None:
        anna = await create_manager(client)
        acme = await create_client(client)
        past = (now() - timedelta(days=1)).isoformat()
        future = (now() + timedelta(days=1)).isoformat()

        async def log(next_step: dict[str, Any] | None) -> str:
            made = await create_interaction(client, acme["id"], anna["id"], next_step=next_step)
            return str(made["id"])

        overdue = await log({"description": "call back", "due_at": past})
        not_yet = await log({"description": "send deck", "due_at": future})
        done = await log({"description": "sent", "due_at": past, "done": True})
        undated = await log({"description": "some day"})
        none = await log(None)
        assert await listed(client, next_step_overdue="true") == {overdue}
        assert await listed(client, next_step_overdue="false") == {not_yet, done, undated, none}
        assert len(await listed(client)) == 5

        marked = await client.patch(
            f"/v1/interactions/{overdue}",
            json={"next_step": {"description": "call back", "due_at": past, "done": True}},
        )
        assert marked.status_code == 200, marked.text
        assert await listed(client, next_step_overdue="true") == set()

    async def test_pages_do_not_repeat_or_skip(self, client: AsyncClient) -> None:
        anna = await create_manager(client)
        acme = await create_client(client)
        made = {
            (await create_interaction(client, acme["id"], anna["id"], subject=f"#{n}"))["id"]
            for n in range(7)
        }
        seen: list[str] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 2, "client_id": acme["id"]}
            if cursor:
                params["cursor"] = cursor
            page = (await client.get("/v1/interactions", params=params)).json()
            seen += [x["id"] for x in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert len(seen) == len(made) == len(set(seen))
        assert set(seen) == made
