"""First checks of assignments, handover, responsibility and book of business."""

from __future__ import annotations

from httpx import AsyncClient

from tests.factories import create_client, create_manager


class TestHandOverClient:
    async def test_handover_moves_responsibility(self, client: AsyncClient) -> None:
        anna = await create_manager(client)
        bela = await create_manager(client)
        acme = await create_client(client)
        first = await client.post(
            "/v1/assignments",
            json={
                "client_id": acme["id"],
                "manager_id": anna["id"],
                "role": "primary",
                "starts_at": "2026-01-01T00:00:00Z",
            },
        )
        assert first.status_code == 201, first.text
        handed = await client.post(
            f"/v1/clients/{acme['id']}/handover", json={"to_manager_id": bela["id"]}
        )
        assert handed.status_code == 201, handed.text
        body = handed.json()
        assert body["ended"]["id"] == first.json()["id"]
        assert body["ended"]["ends_at"] == body["started"]["starts_at"]
        now = await client.get(f"/v1/clients/{acme['id']}/responsible")
        assert now.status_code == 200, now.text
        assert now.json()["manager_id"] == bela["id"]
        before = await client.get(
            f"/v1/clients/{acme['id']}/responsible", params={"at": "2026-02-01T00:00:00Z"}
        )
        assert before.json()["manager_id"] == anna["id"]
        book = await client.get(f"/v1/managers/{anna['id']}/book", params={"as_of": "2026-02-01"})
        assert book.status_code == 200, book.text
        assert [e["client"]["id"] for e in book.json()["items"]] == [acme["id"]]
        overlap = await client.post(
            "/v1/assignments",
            json={
                "client_id": acme["id"],
                "manager_id": anna["id"],
                "role": "primary",
                "starts_at": "2026-01-15T00:00:00Z",
                "ends_at": "2026-01-20T00:00:00Z",
            },
        )
        assert overlap.status_code == 409, overlap.text
        assert overlap.json()["conflicting_assignments"][0]["id"] == first.json()["id"]

    async def test_absence_creates_covers(self, client: AsyncClient) -> None:
        anna = await create_manager(client)
        cover = await create_manager(client)
        clients = [await create_client(client) for _ in range(3)]
        for c in clients:
            r = await client.post(
                "/v1/assignments",
                json={
                    "client_id": c["id"],
                    "manager_id": anna["id"],
                    "role": "primary",
                    "starts_at": "2026-01-01T00:00:00Z",
                },
            )
            assert r.status_code == 201
        absence = await client.post(
            f"/v1/managers/{anna['id']}/absences",
            json={
                "starts_at": "2027-01-01T00:00:00Z",
                "ends_at": "2027-01-15T00:00:00Z",
                "cover_manager_id": cover["id"],
            },
        )
        assert absence.status_code == 201, absence.text
        assert len(absence.json()["assignments"]) == 3
        during = await client.get(
            f"/v1/clients/{clients[0]['id']}/responsible", params={"at": "2027-01-10T00:00:00Z"}
        )
        assert during.json()["manager_id"] == cover["id"]
        after = await client.get(
            f"/v1/clients/{clients[0]['id']}/responsible", params={"at": "2027-01-15T00:00:00Z"}
        )
        assert after.json()["manager_id"] == anna["id"]
        leave = await client.patch(f"/v1/managers/{anna['id']}", json={"active": False})
        assert leave.status_code == 409, leave.text
        assert len(leave.json()["open_primary_assignments"]) == 3
        leave = await client.patch(
            f"/v1/managers/{anna['id']}", json={"active": False, "successor_id": cover["id"]}
        )
        assert leave.status_code == 409, leave.text  # cover overlaps the successor's primary
