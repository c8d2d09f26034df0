"""Idempotency and optimistic concurrency under load (issue 9, item 6), on real commits."""

from __future__ import annotations

import asyncio

from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.factories import create_client


class TestUnderLoad:
    async def test_fifty_concurrent_posts_with_one_key_create_one_client(
        self, live_client: AsyncClient, engine: AsyncEngine
    ) -> None:
        body = {"name": "Once Only Kft.", "segment": "key", "country": "HU", "currency": "HUF"}
        responses = await asyncio.gather(
            *(
                live_client.post("/v1/clients", json=body, headers={"Idempotency-Key": "k-50"})
                for _ in range(50)
            )
        )
        assert {r.status_code for r in responses} == {201}, [r.text for r in responses][:3]
        assert len({r.json()["id"] for r in responses}) == 1
        replayed = sum(r.headers.get("Idempotent-Replayed") == "true" for r in responses)
        assert replayed == 49
        async with engine.connect() as conn:
            count = await conn.execute(
                text("SELECT count(*) FROM clients WHERE name = 'Once Only Kft.'")
            )
            assert count.scalar_one() == 1

    async def test_fifty_concurrent_patches_with_one_version_one_wins(
        self, live_client: AsyncClient
    ) -> None:
        created = await create_client(live_client)
        url = f"/v1/clients/{created['id']}"
        responses = await asyncio.gather(
            *(
                live_client.patch(url, json={"industry": f"i{n}"}, headers={"If-Match": '"1"'})
                for n in range(50)
            )
        )
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [200] + [412] * 49, statuses
        final = await live_client.get(url)
        assert final.json()["version"] == 2
        assert final.headers["ETag"] == '"2"'
