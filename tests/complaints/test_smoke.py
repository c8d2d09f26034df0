"""First checks of interactions, complaints with SLA, and the timeline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from httpx import AsyncClient

from tests.factories import create_client, create_manager


class TestComplaintFlow:
    async def test_flow_sla_and_timeline(self, client: AsyncClient) -> None:
        anna = await create_manager(client)
        acme = await create_client(client, segment="key")
        r = await client.post(
            "/v1/assignments",
            json={
                "client_id": acme["id"],
                "manager_id": anna["id"],
                "role": "primary",
                "starts_at": "2026-01-01T00:00:00Z",
            },
        )
        assert r.status_code == 201
        received = datetime.now(UTC) - timedelta(hours=30)
        c = await client.post(
            "/v1/complaints",
            json={
                "client_id": acme["id"],
                "title": "Late delivery",
                "category": "delivery",
                "severity": "critical",
                "received_at": received.isoformat(),
            },
        )
        assert c.status_code == 201, c.text
        body = c.json()
        assert body["assignee_id"] == anna["id"]
        assert body["sla"]["first_response_breached"] is True
        assert body["sla"]["resolution_breached"] is True
        cid = body["id"]
        bad = await client.post(f"/v1/complaints/{cid}/transitions", json={"to": "resolved"})
        assert bad.status_code == 409, bad.text
        assert bad.json()["allowed"] == ["acknowledged"]
        for to in ("acknowledged", "in_progress"):
            t = await client.post(f"/v1/complaints/{cid}/transitions", json={"to": to})
            assert t.status_code == 201, t.text
        no_text = await client.post(f"/v1/complaints/{cid}/transitions", json={"to": "resolved"})
        assert no_text.status_code == 422
        done = await client.post(
            f"/v1/complaints/{cid}/transitions", json={"to": "resolved", "resolution": "Sent"}
        )
        assert done.status_code == 201, done.text
        assert done.json()["complaint"]["sla"]["clock"] == "stopped"
        hist = await client.get(f"/v1/complaints/{cid}/history")
        assert [h["to_status"] for h in hist.json()["items"]] == [
            "open",
            "acknowledged",
            "in_progress",
            "resolved",
        ]
        listed = await client.get("/v1/complaints", params={"breached": "true"})
        assert [x["id"] for x in listed.json()["items"]] == [cid]
        policy = (await client.get("/v1/sla-policies")).json()["items"]
        assert {p["severity"] for p in policy} == {"critical", "high", "medium", "low"}
        crit = next(p for p in policy if p["severity"] == "critical")
        patched = await client.patch(
            f"/v1/sla-policies/{crit['id']}",
            json={"first_response_hours": 100, "resolution_hours": 200},
        )
        assert patched.status_code == 200, patched.text
        again = await client.get(f"/v1/complaints/{cid}")
        assert again.json()["breached"] is False
        i = await client.post(
            "/v1/interactions",
            json={
                "client_id": acme["id"],
                "manager_id": anna["id"],
                "channel": "phone",
                "direction": "outbound",
                "occurred_at": datetime.now(UTC).isoformat(),
                "subject": "שלום 123 مرحبا 456",
                "next_step": {"description": "send offer", "due_at": "2026-01-02T00:00:00Z"},
            },
        )
        assert i.status_code == 201, i.text
        assert i.json()["next_step"]["done"] is False
        overdue = await client.get("/v1/interactions", params={"next_step_overdue": "true"})
        assert [x["id"] for x in overdue.json()["items"]] == [i.json()["id"]]
        tl = await client.get(f"/v1/clients/{acme['id']}/timeline")
        assert tl.status_code == 200, tl.text
        kinds = [e["kind"] for e in tl.json()["items"]]
        assert kinds[0] == "assignment_started"
        assert kinds.count("complaint_transition") == 3
        assert kinds[-1] == "interaction"
