"""HTTP behaviour of /v1/clients."""

from __future__ import annotations

import pytest
from httpx import AsyncClient

from tests.factories import create_client

NAMES = [
    "شركة الأمل للتجارة",  # Arabic
    "חברת אור בע״מ",  # Hebrew
    "Αθήνα Εμπορική ΑΕ",  # Greek
    "Қазақстан Темір Жолы",  # Kazakh Cyrillic
    "Ügyfél Kft. – Őrség",  # Hungarian with accents
]


class TestCreateClient:
    @pytest.mark.parametrize("name", NAMES)
    async def test_round_trips_names_in_every_script(self, client: AsyncClient, name: str) -> None:
        created = await create_client(client, name=name)
        fetched = await client.get(f"/v1/clients/{created['id']}")
        assert fetched.status_code == 200
        assert fetched.json()["name"] == name
        assert fetched.headers["ETag"] == '"1"'


class TestListClients:
    @pytest.mark.parametrize(
        ("stored", "query"),
        [("Ügyfél Kft.", "ugyfel"), ("Αθήνα", "αθηνα"), ("Қазақстан Темір Жолы", "ҚАЗАҚ")],
    )
    async def test_search_is_case_and_accent_insensitive(
        self, client: AsyncClient, stored: str, query: str
    ) -> None:
        wanted = await create_client(client, name=stored)
        await create_client(client, name="Unrelated Ltd")
        found = await client.get("/v1/clients", params={"q": query})
        assert found.status_code == 200
        assert [c["id"] for c in found.json()["items"]] == [wanted["id"]]
