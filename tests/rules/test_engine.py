"""The rule engine (DESIGN §4, issue 6 item 7): reruns raise no duplicates, a condition
that is gone resolves its flag, snoozed flags wake up, every parameter change is a new
version recorded on the flags it raises, runs never overlap, and a simulation writes
nothing.

Every test but the concurrency ones runs in the ``client`` fixture's rolled-back
transaction and reads the tables through the same ``connection``; the concurrency tests
use ``live_client`` (real commits on separate connections, truncated afterwards).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.config import Settings
from app.core.auth import Role
from app.rules.catalogue import CATALOGUE
from tests.assertions import assert_invalid, assert_problem
from tests.conftest import make_token
from tests.factories import (
    count_rows,
    create_assignment,
    create_client,
    create_interaction,
    create_manager,
    list_flags,
    move_flag,
    run_rules,
)

S = timedelta(seconds=1)
D = timedelta(days=1)
H = timedelta(hours=1)
RULE = "no_recent_contact"
WRITTEN_TABLES = (
    "flags",
    "flag_events",
    "rule_runs",
    "client_health_history",
    "rules",
    "rule_versions",
    "audit_events",
)
DEFAULT_DAYS = {"strategic": 30, "key": 30, "enterprise": 45, "mid_market": 90, "small": 90}


def iso(value: datetime) -> str:
    return value.isoformat()


def past(days: float) -> datetime:
    return datetime.now(UTC).replace(microsecond=0) - timedelta(days=days)


async def quiet_key_client(http: AsyncClient, last_contact: datetime) -> dict[str, Any]:
    """An active ``key`` client with a primary manager (so ``unassigned`` stays quiet)
    and one interaction at ``last_contact``."""
    anna = await create_manager(http)
    acme = await create_client(http, segment="key", lifecycle_stage="active")
    await create_assignment(http, acme["id"], anna["id"], "primary", iso(last_contact - 400 * D))
    await create_interaction(http, acme["id"], anna["id"], occurred_at=iso(last_contact))
    acme["manager_id"] = anna["id"]
    return acme


async def one_flag(http: AsyncClient, rule: str, client_id: str) -> dict[str, Any]:
    found = [f for f in await list_flags(http, rule=rule, client_id=client_id)]
    unresolved = [f for f in found if f["status"] != "resolved"]
    assert len(unresolved) == 1, found
    return unresolved[0]


async def history(http: AsyncClient, flag_id: str) -> list[dict[str, Any]]:
    response = await http.get(f"/v1/flags/{flag_id}/history", params={"limit": 500})
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


async def duplicates(conn: AsyncConnection) -> list[Any]:
    """(rule, subject) pairs with more than one unresolved flag."""
    result = await conn.execute(
        text(
            "SELECT rule_key, subject_id, count(*) FROM flags WHERE status <> 'resolved'"
            " GROUP BY rule_key, subject_id HAVING count(*) > 1"
        )
    )
    return list(result.all())


async def unresolved_count(conn: AsyncConnection) -> int:
    result = await conn.execute(text("SELECT count(*) FROM flags WHERE status <> 'resolved'"))
    return int(result.scalar_one())


class TestRerun:
    async def test_same_as_of_twice_raises_nothing_new(
        self, client: AsyncClient, connection: AsyncConnection
    ) -> None:
        last = past(100)
        for _ in range(2):
            await quiet_key_client(client, last)  # no_recent_contact
        for _ in range(3):
            await create_client(client, lifecycle_stage="active")  # unassigned
        as_of = iso(last + 40 * D)
        first = await run_rules(client, as_of)
        assert first["per_rule"][RULE]["raised"] == 2
        assert first["per_rule"]["unassigned"]["raised"] == 3
        n = await unresolved_count(connection)
        assert first["raised"] == n >= 5
        events = (await count_rows(connection, "flag_events"))["flag_events"]

        second = await run_rules(client, as_of)
        assert second["raised"] == 0
        assert second["still_open"] == n
        assert second["resolved"] == 0
        assert second["reopened"] == 0
        assert second["per_rule"][RULE]["still_open"] == 2
        assert second["per_rule"]["unassigned"]["still_open"] == 3
        assert await duplicates(connection) == []
        assert await unresolved_count(connection) == n
        assert (await count_rows(connection, "flag_events"))["flag_events"] == events

    async def test_runs_are_listed_newest_first(self, client: AsyncClient) -> None:
        first = await run_rules(client, iso(past(2)))
        second = await run_rules(client, iso(past(1)))
        response = await client.get("/v1/rule-runs")
        assert response.status_code == 200, response.text
        ids = [r["id"] for r in response.json()["items"]]
        assert ids.index(second["id"]) < ids.index(first["id"])
        one = await client.get(f"/v1/rule-runs/{first['id']}")
        assert one.status_code == 200, one.text
        assert one.json()["trigger"] == "api"
        assert one.json()["actor"] == "test-admin"
        assert set(one.json()["per_rule"]) == {
            "no_recent_contact",
            "unassigned",
            "open_complaints",
            "complaint_sla_breached",
            "negative_sentiment",
            "overdue_follow_up",
            "renewal_at_risk",
            "revenue_decline",
            "quota_behind_pace",
            "quota_missed",
            "quota_missed_repeatedly",
        }

    async def test_idempotency_key_replays_the_run(
        self, client: AsyncClient, connection: AsyncConnection
    ) -> None:
        body = {"as_of": iso(past(1))}
        headers = {"Idempotency-Key": "rule-run-once"}
        first = await client.post("/v1/rule-runs", json=body, headers=headers)
        assert first.status_code == 201, first.text
        again = await client.post("/v1/rule-runs", json=body, headers=headers)
        assert again.status_code == 201, again.text
        assert again.headers.get("Idempotent-Replayed") == "true"
        assert again.json()["id"] == first.json()["id"]
        assert (await count_rows(connection, "rule_runs"))["rule_runs"] == 1

    async def test_only_admin_or_service_may_run(
        self, client: AsyncClient, settings: Settings
    ) -> None:
        for role, status in ((Role.viewer, 403), (Role.account_manager, 403), (Role.service, 201)):
            token = make_token(settings, role)
            response = await client.post(
                "/v1/rule-runs",
                json={"as_of": iso(past(1))},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert response.status_code == status, (role, response.text)


class TestResolve:
    async def test_condition_gone_resolves_the_flag(
        self, client: AsyncClient, connection: AsyncConnection
    ) -> None:
        last = past(100)
        acme = await quiet_key_client(client, last)
        raised = await run_rules(client, iso(last + 31 * D))
        flag = await one_flag(client, RULE, acme["id"])
        await create_interaction(
            client, acme["id"], acme["manager_id"], occurred_at=iso(last + 31 * D + H)
        )
        as_of = last + 32 * D
        run = await run_rules(client, iso(as_of))
        assert run["per_rule"][RULE]["resolved"] == 1
        assert run["resolved"] == 1

        got = await client.get(f"/v1/flags/{flag['id']}")
        assert got.status_code == 200, got.text
        resolved = got.json()
        assert resolved["status"] == "resolved"
        assert resolved["resolved_by"] == "rule_run"
        assert datetime.fromisoformat(resolved["resolved_at"]) == as_of
        assert resolved["snoozed_until"] is None

        rows = (
            await connection.execute(
                text(
                    "SELECT from_status, to_status, actor, run_id, at, client_id"
                    " FROM flag_events WHERE flag_id = :f ORDER BY seq"
                ),
                {"f": flag["id"]},
            )
        ).all()
        # The raise is the flag's own record; only the resolve is a stored event.
        assert [(r.from_status, r.to_status, r.actor) for r in rows] == [
            ("open", "resolved", "rule_run"),
        ]
        assert str(rows[0].run_id) == run["id"]
        assert rows[0].at == as_of
        assert str(rows[0].client_id) == acme["id"]

        steps = await history(client, flag["id"])
        assert [(e["from_status"], e["to_status"]) for e in steps] == [
            (None, "open"),
            ("open", "resolved"),
        ]
        assert (steps[0]["id"], steps[0]["flag_id"]) == (flag["id"], flag["id"])
        assert (steps[0]["actor"], steps[0]["run_id"]) == ("rule_run", raised["id"])
        assert steps[0]["at"] == flag["raised_at"]
        assert steps[1]["actor"] == "rule_run"
        assert steps[1]["run_id"] == run["id"]

        timeline = await client.get(
            f"/v1/clients/{acme['id']}/timeline",
            params={"kinds": ["flag_raised", "flag_resolved"], "order": "asc"},
        )
        assert timeline.status_code == 200, timeline.text
        assert [e["kind"] for e in timeline.json()["items"]] == ["flag_raised", "flag_resolved"]

    async def test_acknowledged_flag_resolves_from_acknowledged(self, client: AsyncClient) -> None:
        last = past(100)
        acme = await quiet_key_client(client, last)
        await run_rules(client, iso(last + 31 * D))
        flag = await one_flag(client, RULE, acme["id"])
        await move_flag(client, flag["id"], "acknowledged", note="calling them")
        await create_interaction(
            client, acme["id"], acme["manager_id"], occurred_at=iso(last + 31 * D + H)
        )
        await run_rules(client, iso(last + 32 * D))
        steps = await history(client, flag["id"])
        assert (steps[-1]["from_status"], steps[-1]["to_status"]) == ("acknowledged", "resolved")

    async def test_condition_back_raises_a_new_flag(
        self, client: AsyncClient, connection: AsyncConnection
    ) -> None:
        last = past(100)
        acme = await quiet_key_client(client, last)
        await run_rules(client, iso(last + 31 * D))
        first = await one_flag(client, RULE, acme["id"])
        again_at = last + 31 * D + H
        await create_interaction(client, acme["id"], acme["manager_id"], occurred_at=iso(again_at))
        await run_rules(client, iso(last + 32 * D))
        back = await run_rules(client, iso(again_at + 30 * D + S))
        assert back["per_rule"][RULE]["raised"] == 1
        second = await one_flag(client, RULE, acme["id"])
        assert second["id"] != first["id"]
        all_flags = await list_flags(client, rule=RULE, client_id=acme["id"])
        assert sorted(f["status"] for f in all_flags) == ["open", "resolved"]
        assert await duplicates(connection) == []


class TestSnooze:
    async def test_snoozed_flag_wakes_when_its_date_passes(self, client: AsyncClient) -> None:
        acme = await create_client(client, lifecycle_stage="active")  # unassigned
        await run_rules(client, iso(past(0)))
        flag = await one_flag(client, "unassigned", acme["id"])
        until = past(-10)
        snoozed = await move_flag(client, flag["id"], "snoozed", until=iso(until))
        assert snoozed["status"] == "snoozed"

        early = await run_rules(client, iso(until - S))
        assert early["per_rule"]["unassigned"]["reopened"] == 0
        assert early["per_rule"]["unassigned"]["raised"] == 0
        still = await one_flag(client, "unassigned", acme["id"])
        assert still["id"] == flag["id"]
        assert still["status"] == "snoozed"
        assert datetime.fromisoformat(still["snoozed_until"]) == until

        due = await run_rules(client, iso(until))
        assert due["per_rule"]["unassigned"]["reopened"] == 1
        assert due["reopened"] == 1
        assert due["per_rule"]["unassigned"]["raised"] == 0
        woken = await one_flag(client, "unassigned", acme["id"])
        assert woken["id"] == flag["id"]
        assert woken["status"] == "open"
        assert woken["snoozed_until"] is None

        steps = await history(client, flag["id"])
        assert [(e["from_status"], e["to_status"]) for e in steps] == [
            (None, "open"),
            ("open", "snoozed"),
            ("snoozed", "open"),
        ]
        assert steps[-1]["actor"] == "rule_run"
        assert steps[-1]["run_id"] == due["id"]
        assert datetime.fromisoformat(steps[-1]["at"]) == until

    async def test_snoozed_flag_resolves_when_its_condition_goes(self, client: AsyncClient) -> None:
        anna = await create_manager(client)
        acme = await create_client(client, lifecycle_stage="active")
        await run_rules(client, iso(past(1)))
        flag = await one_flag(client, "unassigned", acme["id"])
        until = past(-10)
        await move_flag(client, flag["id"], "snoozed", until=iso(until))
        await create_assignment(client, acme["id"], anna["id"], "primary", iso(past(1) + H))
        run = await run_rules(client, iso(until + D))
        assert run["per_rule"]["unassigned"]["resolved"] == 1
        assert run["per_rule"]["unassigned"]["reopened"] == 0
        got = (await client.get(f"/v1/flags/{flag['id']}")).json()
        assert got["status"] == "resolved"
        assert got["snoozed_until"] is None
        steps = await history(client, flag["id"])
        assert (steps[-1]["from_status"], steps[-1]["to_status"]) == ("snoozed", "resolved")


class TestRuleVersions:
    async def test_catalogue_is_seeded_with_the_defaults(self, client: AsyncClient) -> None:
        response = await client.get("/v1/rules")
        assert response.status_code == 200, response.text
        rows = {r["key"]: r for r in response.json()["items"]}
        assert set(rows) == set(CATALOGUE)
        for key, rule in CATALOGUE.items():
            row = rows[key]
            assert row["version"] == 1, key
            assert row["enabled"] is True, key
            assert row["severity"] == rule.severity.value, key
            assert row["subject_type"] == rule.subject_type.value, key
            assert row["params"] == rule.params_model().model_dump(mode="json"), key
            assert row["params_schema"] == rule.params_model.model_json_schema(), key

    async def test_parameter_edit_is_a_new_version_used_by_the_next_flag(
        self, client: AsyncClient
    ) -> None:
        got = await client.get(f"/v1/rules/{RULE}")
        assert got.status_code == 200, got.text
        assert got.headers["ETag"] == '"1"'
        assert got.json()["version"] == 1
        assert got.json()["params"] == {"days_by_segment": DEFAULT_DAYS}

        days = {**DEFAULT_DAYS, "key": 20}
        patched = await client.patch(
            f"/v1/rules/{RULE}",
            json={"params": {"days_by_segment": days}},
            headers={"If-Match": '"1"'},
        )
        assert patched.status_code == 200, patched.text
        assert patched.headers["ETag"] == '"2"'
        assert patched.json()["version"] == 2
        assert patched.json()["params"] == {"days_by_segment": days}
        assert patched.json()["updated_by"] == "test-admin"

        versions = await client.get(f"/v1/rules/{RULE}/versions")
        assert versions.status_code == 200, versions.text
        items = versions.json()["items"]
        assert [v["version"] for v in items] == [2, 1]
        assert items[0]["params"]["days_by_segment"]["key"] == 20
        assert items[0]["changed_by"] == "test-admin"
        assert items[1]["params"]["days_by_segment"]["key"] == 30

        last = past(100)
        acme = await quiet_key_client(client, last)
        await run_rules(client, iso(last + 20 * D))
        assert await list_flags(client, rule=RULE, client_id=acme["id"]) == []
        await run_rules(client, iso(last + 20 * D + S))
        flag = await one_flag(client, RULE, acme["id"])
        assert flag["rule_version"] == 2
        assert flag["evidence"]["rule_version"] == 2
        assert flag["evidence"]["threshold_days"] == 20

    async def test_severity_and_switch_are_versioned(self, client: AsyncClient) -> None:
        r = await client.patch("/v1/rules/unassigned", json={"severity": "critical"})
        assert r.status_code == 200, r.text
        assert r.json()["version"] == 2
        acme = await create_client(client, lifecycle_stage="active")
        await run_rules(client, iso(past(1)))
        flag = await one_flag(client, "unassigned", acme["id"])
        assert flag["severity"] == "critical"
        assert flag["rule_version"] == 2

        off = await client.patch(
            "/v1/rules/unassigned", json={"enabled": False}, headers={"If-Match": '"2"'}
        )
        assert off.status_code == 200, off.text
        assert off.json()["enabled"] is False
        assert off.json()["version"] == 3
        other = await create_client(client, lifecycle_stage="active")
        run = await run_rules(client, iso(past(1)))
        # Disabled: it raises nothing, and its open flag resolves instead of counting
        # against the client's health for ever.
        assert run["per_rule"]["unassigned"]["matched"] == 0
        assert run["per_rule"]["unassigned"]["raised"] == 0
        assert run["per_rule"]["unassigned"]["resolved"] == 1
        assert await list_flags(client, rule="unassigned", client_id=other["id"]) == []
        gone = await list_flags(client, rule="unassigned", client_id=acme["id"])
        assert [(f["id"], f["status"], f["resolved_by"]) for f in gone] == [
            (flag["id"], "resolved", "rule_run")
        ]
        assert (await history(client, flag["id"]))[-1]["note"] == "rule disabled"
        health = (await client.get(f"/v1/clients/{acme['id']}/health")).json()
        assert health["score"] == 100
        versions = (await client.get("/v1/rules/unassigned/versions")).json()["items"]
        assert [(v["version"], v["severity"], v["enabled"]) for v in versions] == [
            (3, "critical", False),
            (2, "critical", True),
            (1, "high", True),
        ]

    async def test_stale_if_match_is_412(self, client: AsyncClient) -> None:
        ok = await client.patch(
            f"/v1/rules/{RULE}", json={"enabled": True}, headers={"If-Match": '"1"'}
        )
        assert ok.status_code == 200, ok.text
        stale = await client.patch(
            f"/v1/rules/{RULE}", json={"enabled": False}, headers={"If-Match": '"1"'}
        )
        assert_problem(stale, 412)
        assert stale.headers["ETag"] == '"2"'
        rule = (await client.get(f"/v1/rules/{RULE}")).json()
        assert rule["enabled"] is True
        assert rule["version"] == 2

    async def test_bad_params_are_422_naming_the_parameter(self, client: AsyncClient) -> None:
        cases: list[tuple[str, dict[str, Any], str, str | None]] = [
            (RULE, {"days_by_segment": {"key": 0}}, "body.params.days_by_segment.key", None),
            (RULE, {"days_by_segment": {"key": "soon"}}, "body.params.days_by_segment.key", None),
            (
                RULE,
                {"days_by_segment": {"vip": 10}},
                "body.params.days_by_segment.vip",
                "extra_forbidden",
            ),
            (RULE, {"threshold": 10}, "body.params.threshold", "extra_forbidden"),
            ("unassigned", {"days": 1}, "body.params.days", "extra_forbidden"),
            ("open_complaints", {"min_open": 0}, "body.params.min_open", None),
            ("revenue_decline", {"max_ratio": "1.5"}, "body.params.max_ratio", None),
            ("revenue_decline", {"max_ratio": 0.5}, "body.params.max_ratio", None),
            ("quota_missed_repeatedly", {"consecutive": 1}, "body.params.consecutive", None),
            ("negative_sentiment", {"window": 2, "min_negative": 3}, "body.params", None),
        ]
        for key, params, field, kind in cases:
            response = await client.patch(f"/v1/rules/{key}", json={"params": params})
            body = assert_invalid(response, field)
            if kind is not None:
                assert kind in {e["type"] for e in body["errors"]}, body
        null = await client.patch(f"/v1/rules/{RULE}", json={"params": None})
        assert_invalid(null, "body.params")
        versions = (await client.get(f"/v1/rules/{RULE}/versions")).json()["items"]
        assert [v["version"] for v in versions] == [1]

    async def test_unknown_rule_and_non_admin(
        self, client: AsyncClient, settings: Settings
    ) -> None:
        assert_problem(await client.get("/v1/rules/no_such_rule"), 404)
        assert_problem(await client.patch("/v1/rules/no_such_rule", json={"enabled": False}), 404)
        token = make_token(settings, Role.sales_manager)
        response = await client.patch(
            f"/v1/rules/{RULE}",
            json={"enabled": False},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert_problem(response, 403)


class TestConcurrentRuns:
    async def test_two_runs_at_once_never_duplicate_a_flag(
        self, live_client: AsyncClient, engine: AsyncEngine
    ) -> None:
        for _ in range(5):
            await create_client(live_client, lifecycle_stage="active")  # unassigned
        as_of = iso(past(0))
        for _ in range(3):
            responses = await asyncio.gather(
                live_client.post("/v1/rule-runs", json={"as_of": as_of}),
                live_client.post("/v1/rule-runs", json={"as_of": as_of}),
            )
            statuses = sorted(r.status_code for r in responses)
            assert statuses in ([201, 201], [201, 409]), [r.text for r in responses]
            for r in responses:
                if r.status_code == 409:
                    assert_problem(r, 409)
        async with engine.connect() as conn:
            assert await duplicates(conn) == []
            assert await unresolved_count(conn) == 5
            # Raised once each: five flags in all, resolved or not.
            raised = await conn.execute(text("SELECT count(*) FROM flags"))
            assert raised.scalar_one() == 5

    async def test_concurrent_runs_at_different_instants(
        self, live_client: AsyncClient, engine: AsyncEngine
    ) -> None:
        for _ in range(3):
            await create_client(live_client, lifecycle_stage="active")
        responses = await asyncio.gather(
            *(live_client.post("/v1/rule-runs", json={"as_of": iso(past(n))}) for n in range(4))
        )
        assert {r.status_code for r in responses} <= {201, 409}
        assert any(r.status_code == 201 for r in responses)
        async with engine.connect() as conn:
            assert await duplicates(conn) == []
            assert await unresolved_count(conn) == 3


class TestSimulate:
    async def test_writes_nothing_and_reflects_overrides(
        self, client: AsyncClient, connection: AsyncConnection
    ) -> None:
        last = past(100)
        flagged = await quiet_key_client(client, last)
        as_of = iso(last + 40 * D)
        await run_rules(client, as_of)
        flag = await one_flag(client, RULE, flagged["id"])
        fresh = await quiet_key_client(client, last)  # not flagged yet: no run since
        before = await count_rows(connection, *WRITTEN_TABLES)

        async def simulate(overrides: dict[str, Any]) -> dict[str, Any]:
            response = await client.post(
                "/v1/rule-runs/simulate", json={"as_of": as_of, "overrides": overrides}
            )
            assert response.status_code == 200, response.text
            return dict(response.json())

        plain = await simulate({})
        assert plain["per_rule"][RULE]["matched"] == 2
        assert plain["per_rule"][RULE]["would_raise"] == 1
        assert plain["per_rule"][RULE]["would_resolve"] == 0
        found = {f["subject_id"]: f for f in plain["flags"] if f["rule_key"] == RULE}
        assert found[flagged["id"]]["already_open"] is True
        assert found[fresh["id"]]["already_open"] is False
        assert found[fresh["id"]]["evidence"]["threshold_days"] == 30

        looser = await simulate(
            {RULE: {"params": {"days_by_segment": {**DEFAULT_DAYS, "key": 50}}}}
        )
        assert looser["per_rule"][RULE]["matched"] == 0
        assert looser["per_rule"][RULE]["would_resolve"] == 1
        assert [f for f in looser["flags"] if f["rule_key"] == RULE] == []

        stricter = await simulate(
            {
                RULE: {
                    "params": {"days_by_segment": {**DEFAULT_DAYS, "key": 35}},
                    "severity": "critical",
                }
            }
        )
        listed = [f for f in stricter["flags"] if f["rule_key"] == RULE]
        assert len(listed) == 2
        assert {f["severity"] for f in listed} == {"critical"}
        assert {f["evidence"]["threshold_days"] for f in listed} == {35}

        off = await simulate({RULE: {"enabled": False}})
        # Disabled, the rule matches nothing and its open flag would resolve.
        assert off["per_rule"][RULE]["matched"] == 0
        assert off["per_rule"][RULE]["would_raise"] == 0
        assert off["per_rule"][RULE]["would_resolve"] == 1
        assert [f for f in off["flags"] if f["rule_key"] == RULE] == []

        assert await count_rows(connection, *WRITTEN_TABLES) == before
        assert (await client.get(f"/v1/flags/{flag['id']}")).json()["status"] == "open"
        rule = (await client.get(f"/v1/rules/{RULE}")).json()
        assert (rule["version"], rule["params"]["days_by_segment"]["key"]) == (1, 30)
        # A real run afterwards still sees the stored configuration.
        run = await run_rules(client, as_of)
        assert run["per_rule"][RULE]["raised"] == 1
        assert run["per_rule"][RULE]["still_open"] == 1

    async def test_simulation_limit(self, client: AsyncClient) -> None:
        for _ in range(3):
            await create_client(client, lifecycle_stage="active")
        response = await client.post(
            "/v1/rule-runs/simulate", json={"as_of": iso(past(1)), "limit": 2}
        )
        assert response.status_code == 200, response.text
        assert len(response.json()["flags"]) == 2
        assert response.json()["per_rule"]["unassigned"]["matched"] == 3

    async def test_bad_overrides_are_422(self, client: AsyncClient) -> None:
        unknown = await client.post(
            "/v1/rule-runs/simulate", json={"overrides": {"no_such_rule": {"enabled": False}}}
        )
        assert_invalid(unknown, "body.overrides")
        bad = await client.post(
            "/v1/rule-runs/simulate",
            json={"overrides": {RULE: {"params": {"days_by_segment": {"key": -1}}}}},
        )
        assert_invalid(bad, f"body.overrides.{RULE}.params.days_by_segment.key")
        extra = await client.post(
            "/v1/rule-runs/simulate",
            json={"overrides": {"quota_missed": {"params": {"lookback": 5}}}},
        )
        body = assert_invalid(extra, "body.overrides.quota_missed.params.lookback")
        assert "extra_forbidden" in {e["type"] for e in body["errors"]}
