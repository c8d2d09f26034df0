"""Small helpers that create resources through the API and return their JSON."""

from __future__ import annotations

import uuid
from typing import Any

from httpx import AsyncClient


async def create_manager(http: AsyncClient, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "email": f"m-{uuid.uuid4().hex[:10]}@example.com",
        "full_name": "Test Manager",
        "role": "account_manager",
        "time_zone": "Europe/Budapest",
    }
    body.update(fields)
    response = await http.post("/v1/managers", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def create_client(http: AsyncClient, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": f"Client {uuid.uuid4().hex[:8]}",
        "segment": "enterprise",
        "country": "HU",
        "currency": "HUF",
    }
    body.update(fields)
    response = await http.post("/v1/clients", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())
