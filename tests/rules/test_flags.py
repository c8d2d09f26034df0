"""Flags (DESIGN §4, issue 6 item 7): the lifecycle (open → acknowledged | snoozed →
resolved, resolved is final), the list filters (``manager_id`` means the clients the
manager is responsible for now plus the manager's own quota flags) and the client health
score (100 − Σ points of open and acknowledged flags, floored at 0) with its history.

Every test runs in the ``client`` fixture's rolled-back transaction.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from httpx import AsyncClient

from app.config import Settings
from app.core.auth import Role
from tests.assertions import assert_invalid, assert_problem
from tests.conftest import make_token
from tests.factories import (
    create_assignment,
    create_client,
    create_complaint,
    create_interaction,
    create_manager,
    create_quota,
    list_flags,
    move_flag,
    run_rules,
)

S = timedelta(seconds=1)
D = timedelta(days=1)
H = timedelta(hours=1)


def iso(value: datetime) -> str:
    return value.isoformat()


def past(days: float) -> datetime:
    return datetime.now(UTC).replace(microsecond=0) - timedelta(days=days)


async def unassigned_flag(http: AsyncClient) -> dict[str, Any]:
    """An open ``unassigned`` flag about a new active client."""
    acme = await create_client(http, lifecycle_stage="active")
    await run_rules(http, iso(past(0)))
    (flag,) = await list_flags(http, rule="unassigned", client_id=acme["id"])
    assert flag["status"] == "open"
    return flag


async def transition(http: AsyncClient, flag_id: str, body: dict[str, Any]) -> Any:
    return await http.post(f"/v1/flags/{flag_id}/transitions", json=body)


async def steps(http: AsyncClient, flag_id: str) -> list[tuple[str | None, str]]:
    response = await http.get(f"/v1/flags/{flag_id}/history")
    assert response.status_code == 200, response.text
    return [(e["from_status"], e["to_status"]) for e in response.json()["items"]]


async def health(http: AsyncClient, client_id: str) -> dict[str, Any]:
    response = await http.get(f"/v1/clients/{client_id}/health")
    assert response.status_code == 200, response.text
    return dict(response.json())


class TestLifecycle:
    async def test_legal_path_with_actor_and_note(self, client: AsyncClient) -> None:
        flag = await unassigned_flag(client)
        acked = await move_flag(client, flag["id"], "acknowledged", note="On it")
        assert acked["status"] == "acknowledged"
        assert acked["note"] == "On it"
        until = past(-7)
        snoozed = await move_flag(client, flag["id"], "snoozed", until=iso(until))
        assert snoozed["status"] == "snoozed"
        assert datetime.fromisoformat(snoozed["snoozed_until"]) == until
        woken = await move_flag(client, flag["id"], "open")
        assert woken["status"] == "open"
        assert woken["snoozed_until"] is None
        resolved = await move_flag(client, flag["id"], "resolved", note="Assigned")
        assert resolved["status"] == "resolved"
        assert resolved["resolved_by"] == "user"
        assert resolved["resolved_at"] is not None

        response = await client.get(f"/v1/flags/{flag['id']}/history")
        events = response.json()["items"]
        assert [(e["from_status"], e["to_status"]) for e in events] == [
            (None, "open"),
            ("open", "acknowledged"),
            ("acknowledged", "snoozed"),
            ("snoozed", "open"),
            ("open", "resolved"),
        ]
        assert events[0]["actor"] == "rule_run"
        assert {e["actor"] for e in events[1:]} == {"test-admin"}
        assert events[1]["note"] == "On it"
        assert events[4]["note"] == "Assigned"
        assert all(e["run_id"] is None for e in events[1:])

    async def test_open_can_be_snoozed_or_resolved_directly(self, client: AsyncClient) -> None:
        first = await unassigned_flag(client)
        await move_flag(client, first["id"], "snoozed", until=iso(past(-1)))
        second = await unassigned_flag(client)
        await move_flag(client, second["id"], "resolved")
        assert await steps(client, second["id"]) == [(None, "open"), ("open", "resolved")]

    async def test_resolved_is_final(self, client: AsyncClient) -> None:
        flag = await unassigned_flag(client)
        await move_flag(client, flag["id"], "resolved")
        for to in ("open", "acknowledged", "snoozed", "resolved"):
            body: dict[str, Any] = {"to": to}
            if to == "snoozed":
                body["until"] = iso(past(-1))
            problem = assert_problem(await transition(client, flag["id"], body), 409)
            assert problem["allowed"] == []
            assert problem["current_status"] == "resolved"
        assert await steps(client, flag["id"]) == [(None, "open"), ("open", "resolved")]

    async def test_illegal_moves_are_409_listing_the_allowed_ones(
        self, client: AsyncClient
    ) -> None:
        flag = await unassigned_flag(client)
        problem = assert_problem(await transition(client, flag["id"], {"to": "open"}), 409)
        assert sorted(problem["allowed"]) == ["acknowledged", "resolved", "snoozed"]
        await move_flag(client, flag["id"], "acknowledged")
        for to in ("open", "acknowledged"):
            problem = assert_problem(await transition(client, flag["id"], {"to": to}), 409)
            assert sorted(problem["allowed"]) == ["resolved", "snoozed"]
        await move_flag(client, flag["id"], "snoozed", until=iso(past(-1)))
        problem = assert_problem(await transition(client, flag["id"], {"to": "acknowledged"}), 409)
        assert sorted(problem["allowed"]) == ["open", "resolved"]
        got = (await client.get(f"/v1/flags/{flag['id']}")).json()
        assert got["status"] == "snoozed"

    async def test_snooze_needs_a_future_until(self, client: AsyncClient) -> None:
        flag = await unassigned_flag(client)
        assert_invalid(await transition(client, flag["id"], {"to": "snoozed"}), "body.until")
        gone = iso(past(1))
        assert_invalid(
            await transition(client, flag["id"], {"to": "snoozed", "until": gone}), "body.until"
        )
        naive = (datetime.now() + timedelta(days=1)).replace(tzinfo=None).isoformat()
        assert_invalid(
            await transition(client, flag["id"], {"to": "snoozed", "until": naive}), "body.until"
        )
        got = (await client.get(f"/v1/flags/{flag['id']}")).json()
        assert got["status"] == "open"
        assert got["snoozed_until"] is None
        assert await steps(client, flag["id"]) == [(None, "open")]

    async def test_bad_requests(self, client: AsyncClient, settings: Settings) -> None:
        flag = await unassigned_flag(client)
        assert_invalid(await transition(client, flag["id"], {"to": "closed"}), "body.to")
        assert_invalid(
            await transition(client, flag["id"], {"to": "acknowledged", "x": 1}), "body.x"
        )
        missing = "00000000-0000-4000-8000-000000000000"
        assert_problem(await transition(client, missing, {"to": "acknowledged"}), 404)
        assert_problem(await client.get(f"/v1/flags/{missing}"), 404)
        assert_problem(await client.get(f"/v1/flags/{missing}/history"), 404)
        viewer = make_token(settings, Role.viewer)
        response = await client.post(
            f"/v1/flags/{flag['id']}/transitions",
            json={"to": "acknowledged"},
            headers={"Authorization": f"Bearer {viewer}"},
        )
        assert_problem(response, 403)
        as_viewer = await client.get(
            f"/v1/flags/{flag['id']}", headers={"Authorization": f"Bearer {viewer}"}
        )
        assert as_viewer.status_code == 200, as_viewer.text

    async def test_a_run_after_a_manual_resolve_raises_anew(self, client: AsyncClient) -> None:
        flag = await unassigned_flag(client)
        await move_flag(client, flag["id"], "resolved")
        run = await run_rules(client, iso(past(0)))
        assert run["per_rule"]["unassigned"]["raised"] >= 1
        flags = await list_flags(client, rule="unassigned", client_id=flag["client_id"])
        assert sorted(f["status"] for f in flags) == ["open", "resolved"]


class TestFilters:
    async def test_status_rule_severity_client_and_quota(self, client: AsyncClient) -> None:
        anna = await create_manager(client)
        lonely = await create_client(client, lifecycle_stage="active", segment="key")
        served = await create_client(client, lifecycle_stage="active", segment="key")
        await create_assignment(client, served["id"], anna["id"], "primary", iso(past(300)))
        quota = await create_quota(client, anna["id"], iso(past(100)), iso(past(10)))
        await run_rules(
            client, iso(past(-40))
        )  # lonely: unassigned + no contact; served: no contact
        everything = await list_flags(client)
        assert {(f["rule_key"], f["subject_id"]) for f in everything} == {
            ("unassigned", lonely["id"]),
            ("no_recent_contact", lonely["id"]),
            ("no_recent_contact", served["id"]),
            ("quota_missed", quota["id"]),
        }

        def keys(flags: list[dict[str, Any]]) -> set[tuple[str, str]]:
            return {(f["rule_key"], f["subject_id"]) for f in flags}

        assert keys(await list_flags(client, rule="no_recent_contact")) == {
            ("no_recent_contact", lonely["id"]),
            ("no_recent_contact", served["id"]),
        }
        assert keys(await list_flags(client, client_id=lonely["id"])) == {
            ("unassigned", lonely["id"]),
            ("no_recent_contact", lonely["id"]),
        }
        assert keys(await list_flags(client, severity="high")) == {
            ("unassigned", lonely["id"]),
            ("quota_missed", quota["id"]),
        }
        assert keys(await list_flags(client, quota_id=quota["id"])) == {
            ("quota_missed", quota["id"])
        }
        assert keys(await list_flags(client, rule="no_recent_contact", client_id=served["id"])) == {
            ("no_recent_contact", served["id"])
        }

        one = next(f for f in everything if f["subject_id"] == served["id"])
        await move_flag(client, one["id"], "acknowledged")
        assert keys(await list_flags(client, status="acknowledged")) == {
            ("no_recent_contact", served["id"])
        }
        assert len(await list_flags(client, status="open")) == 3
        assert await list_flags(client, status="resolved") == []

    async def test_pages_and_invalid_filters(self, client: AsyncClient) -> None:
        for _ in range(3):
            await create_client(client, lifecycle_stage="active")
        await run_rules(client, iso(past(0)))
        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 2, "rule": "unassigned"}
            if cursor:
                params["cursor"] = cursor
            page = (await client.get("/v1/flags", params=params)).json()
            seen += [f["id"] for f in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert len(seen) == len(set(seen)) == 3
        assert_invalid(await client.get("/v1/flags", params={"status": "gone"}), "query.status")
        assert_invalid(
            await client.get("/v1/flags", params={"severity": "urgent"}), "query.severity"
        )
        assert_invalid(
            await client.get("/v1/flags", params={"manager_id": "nope"}), "query.manager_id"
        )

    async def test_manager_filter_follows_responsibility_now(self, client: AsyncClient) -> None:
        anna = await create_manager(client)
        bela = await create_manager(client)
        long_ago = iso(past(300))

        async def key_client() -> dict[str, Any]:
            return await create_client(client, lifecycle_stage="active", segment="key")

        primary = await key_client()
        await create_assignment(client, primary["id"], anna["id"], "primary", long_ago)
        former = await key_client()  # anna's until 50 days ago, nobody's since
        await create_assignment(
            client, former["id"], anna["id"], "primary", long_ago, iso(past(50))
        )
        covered = await key_client()  # anna's primary, but bela covers now
        await create_assignment(client, covered["id"], anna["id"], "primary", long_ago)
        await create_assignment(client, covered["id"], bela["id"], "cover", iso(past(5)))
        covering = await key_client()  # bela's primary, anna covers now
        await create_assignment(client, covering["id"], bela["id"], "primary", long_ago)
        await create_assignment(client, covering["id"], anna["id"], "cover", iso(past(5)))
        secondary = await key_client()  # bela's primary, anna only secondary
        await create_assignment(client, secondary["id"], bela["id"], "primary", long_ago)
        await create_assignment(client, secondary["id"], anna["id"], "secondary", long_ago)
        anna_quotas = [
            await create_quota(client, anna["id"], iso(past(100)), iso(past(60))),
            await create_quota(client, anna["id"], iso(past(60)), iso(past(20))),
        ]
        bela_quota = await create_quota(client, bela["id"], iso(past(60)), iso(past(20)))

        # Every client: no contact; former: also unassigned; quotas: missed; anna: twice.
        await run_rules(client, iso(past(-40)))
        found = await list_flags(client, manager_id=anna["id"])
        assert {(f["rule_key"], f["subject_id"]) for f in found} == {
            ("no_recent_contact", primary["id"]),
            ("no_recent_contact", covering["id"]),
            ("quota_missed", anna_quotas[0]["id"]),
            ("quota_missed", anna_quotas[1]["id"]),
            ("quota_missed_repeatedly", anna["id"]),
        }
        found = await list_flags(client, manager_id=bela["id"])
        assert {(f["rule_key"], f["subject_id"]) for f in found} == {
            ("no_recent_contact", covered["id"]),
            ("no_recent_contact", secondary["id"]),
            ("quota_missed", bela_quota["id"]),
        }
        narrowed = await list_flags(client, manager_id=anna["id"], rule="quota_missed")
        assert {f["subject_id"] for f in narrowed} == {q["id"] for q in anna_quotas}


class TestHealth:
    async def troubled(self, http: AsyncClient, **fields: Any) -> tuple[str, datetime]:
        """An unassigned key client (high 25), last contacted 40 days ago (medium 10), with
        a critical complaint received 2 days ago (open_complaints high 25, and its 24 h
        SLA breached: high 25). Returns the client id and the as_of to run at."""
        anna = await create_manager(http)
        acme = await create_client(http, lifecycle_stage="active", segment="key", **fields)
        as_of = past(0)
        await create_interaction(http, acme["id"], anna["id"], occurred_at=iso(as_of - 40 * D))
        await create_complaint(
            http, acme["id"], severity="critical", received_at=iso(as_of - 2 * D)
        )
        return str(acme["id"]), as_of

    async def test_score_is_100_minus_open_and_acknowledged_points(
        self, client: AsyncClient
    ) -> None:
        acme, as_of = await self.troubled(client)
        fresh = await create_client(client, lifecycle_stage="active", segment="key")
        assert (await health(client, fresh["id"]))["score"] == 100
        await run_rules(client, iso(as_of))
        got = await health(client, acme)
        assert {f["rule_key"] for f in got["open_flags"]} == {
            "unassigned",
            "no_recent_contact",
            "open_complaints",
            "complaint_sla_breached",
        }
        assert got["score"] == 100 - 25 - 10 - 25 - 25 == 15
        flags = {f["rule_key"]: f for f in got["open_flags"]}

        await move_flag(client, flags["open_complaints"]["id"], "acknowledged")
        assert (await health(client, acme))["score"] == 15  # acknowledged still counts

        await move_flag(client, flags["no_recent_contact"]["id"], "snoozed", until=iso(past(-3)))
        assert (await health(client, acme))["score"] == 25  # snoozed does not

        await move_flag(client, flags["unassigned"]["id"], "resolved")
        assert (await health(client, acme))["score"] == 50  # nor does resolved

    async def test_score_is_floored_at_zero(self, client: AsyncClient) -> None:
        renewal = (datetime.now(UTC).date() + timedelta(days=20)).isoformat()
        acme, as_of = await self.troubled(client, renewal_date=renewal)
        r = await client.patch("/v1/rules/no_recent_contact", json={"severity": "critical"})
        assert r.status_code == 200, r.text
        await run_rules(client, iso(as_of))
        got = await health(client, acme)
        assert "renewal_at_risk" in {f["rule_key"] for f in got["open_flags"]}
        # 40 + 25 + 25 + 25 + 25 = 140 points.
        assert got["score"] == 0
        assert got["history"][0]["score"] == 0

    async def test_history_has_a_point_per_run_that_changed_the_score(
        self, client: AsyncClient
    ) -> None:
        anna = await create_manager(client)
        acme = await create_client(client, lifecycle_stage="active")
        start = past(2)
        raised = await run_rules(client, iso(start))  # unassigned: 75
        await run_rules(client, iso(start + H))  # unchanged: no point
        await create_assignment(client, acme["id"], anna["id"], "primary", iso(start + 90 * 60 * S))
        resolved = await run_rules(client, iso(start + 2 * H))  # resolved: 100
        await run_rules(client, iso(start + 3 * H))  # unchanged: no point
        got = await health(client, acme["id"])
        assert got["score"] == 100
        assert got["open_flags"] == []
        assert [
            (p["score"], p["run_id"], datetime.fromisoformat(p["at"])) for p in got["history"]
        ] == [
            (100, resolved["id"], start + 2 * H),
            (75, raised["id"], start),
        ]

    async def test_no_point_when_the_flags_change_but_the_score_does_not(
        self, client: AsyncClient
    ) -> None:
        anna = await create_manager(client)
        acme = await create_client(client, lifecycle_stage="active")
        start = past(2)
        first = await run_rules(client, iso(start))  # unassigned (high): 75
        fixed = iso(start + 90 * 60 * S)
        await create_assignment(client, acme["id"], anna["id"], "primary", fixed)
        await create_complaint(client, acme["id"], severity="critical", received_at=fixed)
        run = await run_rules(client, iso(start + 2 * H))
        # unassigned resolved, open_complaints (high) raised: still 75.
        assert run["per_rule"]["unassigned"]["resolved"] == 1
        assert run["per_rule"]["open_complaints"]["raised"] == 1
        got = await health(client, acme["id"])
        assert got["score"] == 75
        assert [(p["score"], p["run_id"]) for p in got["history"]] == [(75, first["id"])]

    async def test_unknown_client_is_404(self, client: AsyncClient) -> None:
        assert_problem(
            await client.get(f"/v1/clients/{'0' * 8}-0000-4000-8000-{'0' * 12}/health"), 404
        )
