"""First checks of the rule engine over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from httpx import AsyncClient

from tests.factories import create_client, create_manager


class TestRuleRun:
    async def test_raise_rerun_resolve(self, client: AsyncClient) -> None:
        anna = await create_manager(client)
        old = (datetime.now(UTC) - timedelta(days=400)).isoformat()
        acme = await create_client(client, segment="key", lifecycle_stage="active")
        other = await create_client(client, segment="small", lifecycle_stage="active")
        for c in (acme, other):
            r = await client.post(
                "/v1/assignments",
                json={
                    "client_id": c["id"],
                    "manager_id": anna["id"],
                    "role": "primary",
                    "starts_at": old,
                },
            )
            assert r.status_code == 201
        i = await client.post(
            "/v1/interactions",
            json={
                "client_id": other["id"],
                "manager_id": anna["id"],
                "channel": "phone",
                "direction": "outbound",
                "occurred_at": datetime.now(UTC).isoformat(),
                "subject": "hi",
            },
        )
        assert i.status_code == 201
        as_of = (datetime.now(UTC) + timedelta(days=40)).isoformat()
        run = await client.post("/v1/rule-runs", json={"as_of": as_of})
        assert run.status_code == 201, run.text
        body = run.json()
        assert body["per_rule"]["no_recent_contact"]["raised"] == 1, body
        flags = (await client.get("/v1/flags", params={"rule": "no_recent_contact"})).json()
        assert [f["client_id"] for f in flags["items"]] == [acme["id"]]
        assert flags["items"][0]["evidence"]["threshold_days"] == 30
        again = await client.post("/v1/rule-runs", json={"as_of": as_of})
        assert again.json()["raised"] == 0
        assert again.json()["per_rule"]["no_recent_contact"]["still_open"] == 1
        health = await client.get(f"/v1/clients/{acme['id']}/health")
        assert health.status_code == 200, health.text
        assert health.json()["score"] == 90
        assert health.json()["history"][0]["score"] == 90
        sim = await client.post(
            "/v1/rule-runs/simulate",
            json={
                "as_of": as_of,
                "overrides": {
                    "no_recent_contact": {
                        "params": {
                            "days_by_segment": {
                                "strategic": 30,
                                "key": 50,
                                "enterprise": 45,
                                "mid_market": 90,
                                "small": 90,
                            }
                        }
                    }
                },
            },
        )
        assert sim.status_code == 200, sim.text
        assert sim.json()["per_rule"]["no_recent_contact"]["would_resolve"] == 1
        still = (await client.get("/v1/flags", params={"rule": "no_recent_contact"})).json()
        assert still["items"][0]["status"] == "open"
        bad = await client.patch(
            "/v1/rules/no_recent_contact", json={"params": {"days_by_segment": {"key": -1}}}
        )
        assert bad.status_code == 422
        assert bad.json()["errors"][0]["field"] == "body.params.days_by_segment.key"
        later = await client.post(
            "/v1/interactions",
            json={
                "client_id": acme["id"],
                "manager_id": anna["id"],
                "channel": "phone",
                "direction": "outbound",
                "occurred_at": datetime.now(UTC).isoformat(),
                "subject": "catch up",
            },
        )
        assert later.status_code == 201
        soon = (datetime.now(UTC) + timedelta(days=10)).isoformat()
        third = await client.post("/v1/rule-runs", json={"as_of": soon})
        assert third.json()["per_rule"]["no_recent_contact"]["resolved"] == 1
        tl = await client.get(
            f"/v1/clients/{acme['id']}/timeline", params={"kinds": ["flag_raised", "flag_resolved"]}
        )
        assert sorted(e["kind"] for e in tl.json()["items"]) == ["flag_raised", "flag_resolved"]
