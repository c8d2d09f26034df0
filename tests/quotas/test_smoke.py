"""First checks of sales, FX rates, quotas, attainment and the team roll-up."""

from __future__ import annotations

from httpx import AsyncClient

from tests.factories import create_client, create_manager


class TestAttainment:
    async def test_sales_converted_and_rolled_up(self, client: AsyncClient) -> None:
        lead = await create_manager(client, role="team_lead")
        anna = await create_manager(client, reports_to_id=lead["id"])
        acme = await create_client(client, currency="USD")
        r = await client.post(
            "/v1/assignments",
            json={
                "client_id": acme["id"],
                "manager_id": anna["id"],
                "role": "primary",
                "starts_at": "2025-01-01T00:00:00Z",
            },
        )
        assert r.status_code == 201
        q = await client.post(
            "/v1/quotas",
            json={
                "manager_id": anna["id"],
                "metric": "sales_amount",
                "period": "FY2026-Q1",
                "target": {"amount": "1000.00", "currency": "EUR"},
            },
        )
        assert q.status_code == 201, q.text
        assert q.json()["period_start"] == "2026-01-01T00:00:00Z"
        for amount in ("0.10", "0.10", "0.10"):
            s = await client.post(
                "/v1/sales",
                json={
                    "client_id": acme["id"],
                    "amount": {"amount": amount, "currency": "EUR"},
                    "closed_at": "2026-02-01T10:00:00Z",
                    "kind": "new",
                },
            )
            assert s.status_code == 201, s.text
            assert s.json()["credited_manager_id"] == anna["id"]
        usd = await client.post(
            "/v1/sales",
            json={
                "client_id": acme["id"],
                "amount": {"amount": "200.00", "currency": "USD"},
                "closed_at": "2026-03-01T10:00:00Z",
                "kind": "upsell",
            },
        )
        assert usd.status_code == 201
        qid = q.json()["id"]
        missing = await client.get(f"/v1/quotas/{qid}/attainment", params={"as_of": "2026-04-01"})
        assert missing.status_code == 422, missing.text
        assert "USD/EUR" in missing.json()["detail"]
        rate = await client.post(
            "/v1/fx-rates",
            json={"base": "EUR", "quote": "USD", "rate": "1.25", "valid_on": "2026-01-01"},
        )
        assert rate.status_code == 201, rate.text
        again = await client.post(
            "/v1/fx-rates",
            json={"base": "EUR", "quote": "USD", "rate": "1.30", "valid_on": "2026-01-01"},
        )
        assert again.status_code == 409
        att = await client.get(f"/v1/quotas/{qid}/attainment", params={"as_of": "2026-04-01"})
        assert att.status_code == 200, att.text
        body = att.json()
        assert body["achieved"] == "160.30"
        assert body["status"] == "missed"
        assert len(body["records"]) == 4
        team = await client.get(
            f"/v1/managers/{lead['id']}/attainment",
            params={"period": "FY2026-Q1", "as_of": "2026-04-01", "currency": "EUR"},
        )
        assert team.status_code == 200, team.text
        assert team.json()["totals"][0]["achieved"] == "160.30"
        assert team.json()["members"][0]["depth"] == 1
