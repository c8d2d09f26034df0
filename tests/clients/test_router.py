"""HTTP behaviour of /v1/clients."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.config import Settings
from app.core.auth import Role
from tests.assertions import assert_invalid, assert_problem
from tests.conftest import make_token
from tests.factories import create_client

NAMES = [
    "شركة الأمل للتجارة",  # Arabic
    "חברת אור בע״מ",  # Hebrew
    "Αθήνα Εμπορική ΑΕ",  # Greek
    "Қазақстан Темір Жолы",  # Kazakh Cyrillic
    "Ügyfél Kft. – Őrség",  # Hungarian with accents
]

VALID: dict[str, Any] = {"name": "Valid Kft.", "segment": "key", "country": "HU", "currency": "HUF"}

BAD_CREATE: list[tuple[dict[str, Any], str]] = [
    ({"name": ""}, "body.name"),
    ({"name": "   "}, "body.name"),
    ({"name": "x" * 201}, "body.name"),
    ({"name": None}, "body.name"),
    ({"segment": "gold"}, "body.segment"),
    ({"segment": "KEY"}, "body.segment"),
    ({"lifecycle_stage": "dead"}, "body.lifecycle_stage"),
    ({"country": "XX"}, "body.country"),
    ({"country": "hu"}, "body.country"),
    ({"country": "HUN"}, "body.country"),
    ({"currency": "ZZZ"}, "body.currency"),
    ({"currency": "huf"}, "body.currency"),
    ({"currency": 348}, "body.currency"),
    ({"annual_value": {"amount": 100, "currency": "EUR"}}, "body.annual_value.amount"),
    ({"annual_value": {"amount": 1.5, "currency": "EUR"}}, "body.annual_value.amount"),
    ({"annual_value": {"amount": "1,50", "currency": "EUR"}}, "body.annual_value.amount"),
    ({"annual_value": {"amount": "1e3", "currency": "EUR"}}, "body.annual_value.amount"),
    ({"annual_value": {"amount": "NaN", "currency": "EUR"}}, "body.annual_value.amount"),
    ({"annual_value": {"amount": "1.5", "currency": "JPY"}}, "body.annual_value"),
    ({"annual_value": {"amount": "1.005", "currency": "EUR"}}, "body.annual_value"),
    ({"annual_value": {"amount": "1.0001", "currency": "KWD"}}, "body.annual_value"),
    ({"annual_value": {"amount": "10", "currency": "EURO"}}, "body.annual_value.currency"),
    ({"annual_value": {"amount": "10"}}, "body.annual_value.currency"),
    ({"annual_value": {"amount": "10", "currency": "XTS"}}, "body.annual_value.currency"),
    (
        {"annual_value": {"amount": "1234567890123456", "currency": "EUR"}},
        "body.annual_value.amount",
    ),
    (
        {"annual_value": {"amount": "10", "currency": "EUR", "rate": 1}},
        "body.annual_value.rate",
    ),
    ({"parent_id": "not-a-uuid"}, "body.parent_id"),
    ({"parent_id": 12}, "body.parent_id"),
    ({"time_zone": "Mars/Olympus"}, "body.time_zone"),
    ({"time_zone": "CEST"}, "body.time_zone"),
    ({"renewal_date": "2025-02-30"}, "body.renewal_date"),
    ({"renewal_date": "next year"}, "body.renewal_date"),
    ({"external_ref": ""}, "body.external_ref"),
    ({"nickname": "Bob"}, "body.nickname"),
]

BAD_QUERY: list[tuple[dict[str, str], str]] = [
    ({"updated_since": "2024-01-01T00:00:00"}, "query.updated_since"),  # naive
    ({"updated_since": "yesterday"}, "query.updated_since"),
    ({"updated_since": "2024-13-01T00:00:00Z"}, "query.updated_since"),
    ({"segment": "gold"}, "query.segment"),
    ({"lifecycle_stage": "dead"}, "query.lifecycle_stage"),
    ({"country": "hu"}, "query.country"),
    ({"country": "XX"}, "query.country"),
    ({"parent_id": "nope"}, "query.parent_id"),
    ({"q": "   "}, "query.q"),
    ({"q": "x" * 101}, "query.q"),
    ({"include_archived": "maybe"}, "query.include_archived"),
    ({"limit": "0"}, "query.limit"),
    ({"limit": "501"}, "query.limit"),
    ({"limit": "-1"}, "query.limit"),
    ({"limit": "ten"}, "query.limit"),
    ({"sort": "name"}, "query.sort"),
]

BAD_UPDATE: list[tuple[dict[str, Any], str]] = [
    ({"name": " "}, "body.name"),
    ({"country": "XX"}, "body.country"),
    ({"annual_value": {"amount": "1.5", "currency": "JPY"}}, "body.annual_value"),
    ({"annual_value": {"amount": 3, "currency": "EUR"}}, "body.annual_value.amount"),
    ({"version": 7}, "body.version"),
    ({"id": str(uuid.uuid4())}, "body.id"),
]

MONEY_RENDERING = [
    ("1.5", "KWD", "1.500"),
    ("1500", "JPY", "1500"),
    ("12", "EUR", "12.00"),
    ("12.3", "EUR", "12.30"),
    ("250000.00", "AED", "250000.00"),
    ("0.001", "BHD", "0.001"),
    ("999999999999999.99", "EUR", "999999999999999.99"),
    ("0", "USD", "0.00"),
]


def _with(**fields: Any) -> dict[str, Any]:
    body = dict(VALID)
    body.update(fields)
    return body


async def _ids(http: AsyncClient, **params: Any) -> list[str]:
    response = await http.get("/v1/clients", params=params)
    assert response.status_code == 200, response.text
    return [c["id"] for c in response.json()["items"]]


class TestCreateClient:
    @pytest.mark.parametrize("name", NAMES)
    async def test_round_trips_names_in_every_script(self, client: AsyncClient, name: str) -> None:
        created = await create_client(client, name=name)
        fetched = await client.get(f"/v1/clients/{created['id']}")
        assert fetched.status_code == 200
        assert fetched.json()["name"] == name
        assert fetched.headers["ETag"] == '"1"'

    async def test_answers_201_with_etag_location_and_defaults(self, client: AsyncClient) -> None:
        response = await client.post("/v1/clients", json=VALID)
        assert response.status_code == 201, response.text
        body = response.json()
        uuid.UUID(body["id"])
        assert response.headers["ETag"] == '"1"'
        assert response.headers["Location"] == f"/v1/clients/{body['id']}"
        assert body["version"] == 1
        assert body["lifecycle_stage"] == "prospect"
        assert body["archived"] is False
        assert body["annual_value"] is None
        assert body["created_at"].endswith(("Z", "+00:00"))
        assert body["created_by"] == "test-admin"

    async def test_rejects_bad_field_naming_it(
        self, client: AsyncClient, subtests: pytest.Subtests
    ) -> None:
        for fields, field in BAD_CREATE:
            with subtests.test(field=field, fields=fields):
                assert_invalid(await client.post("/v1/clients", json=_with(**fields)), field)
        listed = await client.get("/v1/clients", params={"include_archived": "true"})
        assert listed.json()["items"] == []

    async def test_rejects_missing_required_field(
        self, client: AsyncClient, subtests: pytest.Subtests
    ) -> None:
        for missing in ("name", "segment", "country", "currency"):
            with subtests.test(missing=missing):
                body = dict(VALID)
                del body[missing]
                assert_invalid(await client.post("/v1/clients", json=body), f"body.{missing}")

    async def test_lists_every_invalid_field_at_once(self, client: AsyncClient) -> None:
        response = await client.post(
            "/v1/clients", json={"name": "", "segment": "gold", "country": "xx", "currency": "EUR"}
        )
        body = assert_invalid(response, "body.name")
        assert {"body.name", "body.segment", "body.country"} <= {e["field"] for e in body["errors"]}

    async def test_rejects_malformed_json(self, client: AsyncClient) -> None:
        response = await client.post(
            "/v1/clients", content=b'{"name": ', headers={"Content-Type": "application/json"}
        )
        assert_problem(response, 422)

    async def test_renders_money_with_the_currency_decimals(
        self, client: AsyncClient, subtests: pytest.Subtests
    ) -> None:
        for amount, currency, rendered in MONEY_RENDERING:
            with subtests.test(amount=amount, currency=currency):
                money = {"amount": amount, "currency": currency}
                created = await create_client(client, annual_value=money)
                assert created["annual_value"] == {"amount": rendered, "currency": currency}
                fetched = await client.get(f"/v1/clients/{created['id']}")
                assert fetched.json()["annual_value"] == {"amount": rendered, "currency": currency}

    async def test_nul_character_is_422_not_500(
        self, anon_lenient: AsyncClient, token: str, subtests: pytest.Subtests
    ) -> None:
        """PostgreSQL cannot store U+0000 in text; the client must hear it as bad input."""
        for field in ("name", "legal_name", "industry", "external_ref"):
            with subtests.test(field=field):
                response = await anon_lenient.post(
                    "/v1/clients",
                    json=_with(**{field: "Bad\u0000Name"}),
                    headers={"Authorization": f"Bearer {token}"},
                )
                assert_problem(response, 422)

    async def test_rejects_unknown_parent(self, client: AsyncClient) -> None:
        response = await client.post("/v1/clients", json=_with(parent_id=str(uuid.uuid4())))
        assert_invalid(response, "body.parent_id")

    async def test_accepts_existing_parent(self, client: AsyncClient) -> None:
        parent = await create_client(client)
        child = await create_client(client, parent_id=parent["id"])
        assert child["parent_id"] == parent["id"]

    async def test_duplicate_external_ref_is_409(self, client: AsyncClient) -> None:
        await create_client(client, external_ref="CRM-001")
        response = await client.post("/v1/clients", json=_with(external_ref="CRM-001"))
        body = assert_problem(response, 409)
        assert "external_ref" in body["detail"]
        assert len(await _ids(client)) == 1

    async def test_session_survives_a_conflict(self, client: AsyncClient) -> None:
        await create_client(client, external_ref="CRM-002")
        duplicate = await client.post("/v1/clients", json=_with(external_ref="CRM-002"))
        assert duplicate.status_code == 409
        after = await create_client(client, external_ref="CRM-003")
        assert after["external_ref"] == "CRM-003"


class TestGetClient:
    async def test_returns_the_client_and_its_etag(self, client: AsyncClient) -> None:
        created = await create_client(client, annual_value={"amount": "10", "currency": "EUR"})
        response = await client.get(f"/v1/clients/{created['id']}")
        assert response.status_code == 200
        assert response.headers["ETag"] == '"1"'
        assert response.json() == created

    async def test_unknown_id_is_404_problem(self, client: AsyncClient) -> None:
        missing = uuid.uuid4()
        body = assert_problem(await client.get(f"/v1/clients/{missing}"), 404)
        assert body["instance"] == f"/v1/clients/{missing}"

    async def test_malformed_id_is_422(
        self, client: AsyncClient, subtests: pytest.Subtests
    ) -> None:
        for bad in ("not-a-uuid", "123", "0" * 33):
            with subtests.test(id=bad):
                assert_invalid(await client.get(f"/v1/clients/{bad}"), "path.client_id")


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

    @pytest.mark.parametrize(
        ("stored", "query"),
        [
            ("شركة الأمل للتجارة", "الامل"),  # hamza above alef dropped in the query
            ("شركة الإسراء", "الاسراء"),  # hamza below alef
            ("مُحَمَّد للتجارة", "محمد"),  # harakat in the stored name
            ("محمد للتجارة", "مُحَمَّد"),  # harakat in the query
            ("שָׁלוֹם בע״מ", "שלום"),  # niqqud in the stored name
            ("שלום בע״מ", "שָׁלוֹם"),  # niqqud in the query
            ("Αθήνα Εμπορική", "ΕΜΠΟΡΙΚΗ"),
            ("Οδυσσεύς", "οδυσσευσ"),  # final sigma
            ("Ёлка ООО", "елка"),
            ("ÇAĞDAŞ Ltd", "cagdas"),
        ],
    )
    async def test_search_folds_every_script(
        self, client: AsyncClient, stored: str, query: str
    ) -> None:
        wanted = await create_client(client, name=stored)
        await create_client(client, name="Unrelated Ltd")
        assert await _ids(client, q=query) == [wanted["id"]]

    async def test_search_matches_legal_name_and_external_ref(self, client: AsyncClient) -> None:
        by_legal = await create_client(client, name="Acme", legal_name="Zebra Holdings Zrt.")
        by_ref = await create_client(client, name="Other", external_ref="SAP-99871")
        await create_client(client, name="Unrelated Ltd")
        assert await _ids(client, q="zebra") == [by_legal["id"]]
        assert await _ids(client, q="99871") == [by_ref["id"]]

    @pytest.mark.parametrize(
        ("stored", "decoys", "query"),
        [
            ("100% Organic", ["100 Organic", "1000 Organic"], "100%"),
            ("foo_bar", ["fooXbar", "foo bar"], "foo_bar"),
            ("a\\b Ltd", ["ab Ltd", "a/b Ltd"], "a\\b"),
            ("%", ["Percentless"], "%"),
        ],
    )
    async def test_search_wildcards_are_literal(
        self, client: AsyncClient, stored: str, decoys: list[str], query: str
    ) -> None:
        wanted = await create_client(client, name=stored)
        for decoy in decoys:
            await create_client(client, name=decoy)
        assert await _ids(client, q=query) == [wanted["id"]]

    async def test_filters_by_segment(self, client: AsyncClient) -> None:
        key = await create_client(client, segment="key")
        await create_client(client, segment="small")
        assert await _ids(client, segment="key") == [key["id"]]

    async def test_filters_by_lifecycle_stage(self, client: AsyncClient) -> None:
        churned = await create_client(client, lifecycle_stage="churned")
        await create_client(client, lifecycle_stage="active")
        assert await _ids(client, lifecycle_stage="churned") == [churned["id"]]

    async def test_filters_by_country(self, client: AsyncClient) -> None:
        ae = await create_client(client, country="AE", currency="AED")
        await create_client(client, country="HU")
        assert await _ids(client, country="AE") == [ae["id"]]

    async def test_filters_by_parent(self, client: AsyncClient) -> None:
        parent = await create_client(client)
        child = await create_client(client, parent_id=parent["id"])
        await create_client(client)
        assert await _ids(client, parent_id=parent["id"]) == [child["id"]]

    async def test_filters_combine_with_and(self, client: AsyncClient) -> None:
        both = await create_client(client, segment="key", country="DE", currency="EUR")
        await create_client(client, segment="key", country="HU")
        await create_client(client, segment="small", country="DE", currency="EUR")
        assert await _ids(client, segment="key", country="DE") == [both["id"]]

    async def test_filters_by_updated_since(
        self, client: AsyncClient, connection: AsyncConnection
    ) -> None:
        old = await create_client(client)
        new = await create_client(client)
        await connection.execute(
            text("UPDATE clients SET updated_at = '2020-06-01T12:00:00Z' WHERE id = :id"),
            {"id": old["id"]},
        )
        assert await _ids(client, updated_since="2021-01-01T00:00:00Z") == [new["id"]]
        # the same instant written with an offset; the bound is inclusive
        assert set(await _ids(client, updated_since="2020-06-01T14:00:00+02:00")) == {
            old["id"],
            new["id"],
        }
        assert await _ids(client, updated_since="2020-06-01T14:00:00.000001+02:00") == [new["id"]]

    async def test_rejects_bad_query_naming_it(
        self, client: AsyncClient, subtests: pytest.Subtests
    ) -> None:
        for params, field in BAD_QUERY:
            with subtests.test(params=params):
                assert_invalid(await client.get("/v1/clients", params=params), field)

    async def test_nul_character_in_search_is_not_a_500(
        self, anon_lenient: AsyncClient, token: str
    ) -> None:
        response = await anon_lenient.get(
            "/v1/clients", params={"q": "ab\u0000c"}, headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code in {200, 422}, response.text

    async def test_unknown_parent_filter_lists_nothing(self, client: AsyncClient) -> None:
        await create_client(client)
        assert await _ids(client, parent_id=str(uuid.uuid4())) == []

    async def test_accepts_limit_bounds(self, client: AsyncClient) -> None:
        await create_client(client)
        for limit in ("1", "500"):
            response = await client.get("/v1/clients", params={"limit": limit})
            assert response.status_code == 200
            assert len(response.json()["items"]) == 1


class TestUpdateClient:
    async def test_changes_only_the_given_fields(self, client: AsyncClient) -> None:
        created = await create_client(client, industry="Retail", renewal_date="2027-03-31")
        response = await client.patch(
            f"/v1/clients/{created['id']}",
            json={"lifecycle_stage": "active", "annual_value": {"amount": "7", "currency": "KWD"}},
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["lifecycle_stage"] == "active"
        assert body["annual_value"] == {"amount": "7.000", "currency": "KWD"}
        assert body["industry"] == "Retail"
        assert body["renewal_date"] == "2027-03-31"
        assert body["version"] == 2
        assert response.headers["ETag"] == '"2"'

    async def test_clears_nullable_fields_with_null(self, client: AsyncClient) -> None:
        created = await create_client(
            client, industry="Retail", annual_value={"amount": "1", "currency": "EUR"}
        )
        response = await client.patch(
            f"/v1/clients/{created['id']}", json={"industry": None, "annual_value": None}
        )
        assert response.status_code == 200, response.text
        assert response.json()["industry"] is None
        assert response.json()["annual_value"] is None

    async def test_rejects_null_for_required_field(
        self, client: AsyncClient, subtests: pytest.Subtests
    ) -> None:
        created = await create_client(client)
        url = f"/v1/clients/{created['id']}"
        for field in ("name", "segment", "lifecycle_stage", "country", "currency"):
            with subtests.test(field=field):
                assert_invalid(await client.patch(url, json={field: None}), f"body.{field}")
        assert (await client.get(url)).json() == created

    async def test_rejects_bad_field_naming_it(
        self, client: AsyncClient, subtests: pytest.Subtests
    ) -> None:
        created = await create_client(client)
        url = f"/v1/clients/{created['id']}"
        for fields, field in BAD_UPDATE:
            with subtests.test(field=field, fields=fields):
                assert_invalid(await client.patch(url, json=fields), field)
        assert (await client.get(url)).json() == created

    async def test_records_when_and_by_whom(
        self, live_client: AsyncClient, settings: Settings
    ) -> None:
        created = await create_client(live_client)
        token = make_token(settings, Role.admin, subject="editor-1")
        response = await live_client.patch(
            f"/v1/clients/{created['id']}",
            json={"industry": "Mining"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["updated_by"] == "editor-1"
        assert body["created_by"] == "test-admin"
        assert body["created_at"] == created["created_at"]
        assert datetime.fromisoformat(body["updated_at"]) > datetime.fromisoformat(
            created["updated_at"]
        )

    async def test_unknown_id_is_404(self, client: AsyncClient) -> None:
        response = await client.patch(f"/v1/clients/{uuid.uuid4()}", json={"name": "X"})
        assert_problem(response, 404)

    async def test_malformed_id_is_422(self, client: AsyncClient) -> None:
        assert_invalid(await client.patch("/v1/clients/xyz", json={"name": "X"}), "path.client_id")

    async def test_parent_cycle_is_422(self, client: AsyncClient) -> None:
        a = await create_client(client)
        b = await create_client(client, parent_id=a["id"])  # B -> A
        response = await client.patch(f"/v1/clients/{a['id']}", json={"parent_id": b["id"]})
        assert_invalid(response, "body.parent_id")
        assert (await client.get(f"/v1/clients/{a['id']}")).json()["parent_id"] is None

    async def test_long_parent_cycle_is_422(self, client: AsyncClient) -> None:
        a = await create_client(client)
        b = await create_client(client, parent_id=a["id"])
        c = await create_client(client, parent_id=b["id"])
        d = await create_client(client, parent_id=c["id"])
        response = await client.patch(f"/v1/clients/{a['id']}", json={"parent_id": d["id"]})
        assert_invalid(response, "body.parent_id")

    async def test_own_parent_is_422(self, client: AsyncClient) -> None:
        a = await create_client(client)
        response = await client.patch(f"/v1/clients/{a['id']}", json={"parent_id": a["id"]})
        assert_invalid(response, "body.parent_id")

    async def test_unknown_parent_is_422(self, client: AsyncClient) -> None:
        a = await create_client(client)
        response = await client.patch(
            f"/v1/clients/{a['id']}", json={"parent_id": str(uuid.uuid4())}
        )
        assert_invalid(response, "body.parent_id")

    async def test_reparenting_without_cycle_works(self, client: AsyncClient) -> None:
        a = await create_client(client)
        b = await create_client(client, parent_id=a["id"])
        c = await create_client(client)
        response = await client.patch(f"/v1/clients/{b['id']}", json={"parent_id": c["id"]})
        assert response.status_code == 200, response.text
        moved = await client.patch(f"/v1/clients/{b['id']}", json={"parent_id": None})
        assert moved.json()["parent_id"] is None

    async def test_duplicate_external_ref_is_409(self, client: AsyncClient) -> None:
        await create_client(client, external_ref="CRM-100")
        other = await create_client(client)
        response = await client.patch(
            f"/v1/clients/{other['id']}", json={"external_ref": "CRM-100"}
        )
        body = assert_problem(response, 409)
        assert body["errors"][0]["field"] == "body.external_ref"
        fetched = await client.get(f"/v1/clients/{other['id']}")
        assert fetched.json()["external_ref"] is None
        assert fetched.headers["ETag"] == '"1"'


class TestArchiveClient:
    async def test_hides_from_default_list_and_keeps_readable(self, client: AsyncClient) -> None:
        kept = await create_client(client)
        gone = await create_client(client)
        response = await client.post(f"/v1/clients/{gone['id']}/archive")
        assert response.status_code == 200, response.text
        assert response.json()["archived"] is True
        assert response.json()["archived_at"] is not None
        assert response.headers["ETag"] == '"2"'
        assert await _ids(client) == [kept["id"]]
        assert set(await _ids(client, include_archived="true")) == {kept["id"], gone["id"]}
        fetched = await client.get(f"/v1/clients/{gone['id']}")
        assert fetched.status_code == 200
        assert fetched.json()["archived"] is True

    async def test_archiving_twice_changes_nothing(self, client: AsyncClient) -> None:
        created = await create_client(client)
        await client.post(f"/v1/clients/{created['id']}/archive")
        again = await client.post(f"/v1/clients/{created['id']}/archive")
        assert again.status_code == 200
        assert again.json()["version"] == 2

    async def test_stale_if_match_is_412(self, client: AsyncClient) -> None:
        created = await create_client(client)
        await client.patch(f"/v1/clients/{created['id']}", json={"industry": "Mining"})
        response = await client.post(
            f"/v1/clients/{created['id']}/archive", headers={"If-Match": '"1"'}
        )
        assert_problem(response, 412)
        assert (await client.get(f"/v1/clients/{created['id']}")).json()["archived"] is False

    async def test_unknown_id_is_404(self, client: AsyncClient) -> None:
        assert_problem(await client.post(f"/v1/clients/{uuid.uuid4()}/archive"), 404)


class TestRestoreClient:
    async def test_brings_an_archived_client_back(self, client: AsyncClient) -> None:
        created = await create_client(client)
        await client.post(f"/v1/clients/{created['id']}/archive")
        response = await client.post(
            f"/v1/clients/{created['id']}/restore", headers={"If-Match": '"2"'}
        )
        assert response.status_code == 200, response.text
        assert response.json()["archived"] is False
        assert response.json()["archived_at"] is None
        assert response.headers["ETag"] == '"3"'
        assert await _ids(client) == [created["id"]]

    async def test_stale_if_match_is_412(self, client: AsyncClient) -> None:
        created = await create_client(client)
        await client.post(f"/v1/clients/{created['id']}/archive")
        response = await client.post(
            f"/v1/clients/{created['id']}/restore", headers={"If-Match": '"1"'}
        )
        assert_problem(response, 412)
        assert await _ids(client) == []

    async def test_unknown_id_is_404(self, client: AsyncClient) -> None:
        assert_problem(await client.post(f"/v1/clients/{uuid.uuid4()}/restore"), 404)


class TestDeleteClient:
    async def test_deletes_a_fresh_client(self, client: AsyncClient) -> None:
        created = await create_client(client)
        response = await client.delete(f"/v1/clients/{created['id']}")
        assert response.status_code == 204
        assert response.content == b""
        assert_problem(await client.get(f"/v1/clients/{created['id']}"), 404)

    async def test_client_with_a_child_is_409_telling_to_archive(self, client: AsyncClient) -> None:
        parent = await create_client(client)
        child = await create_client(client, parent_id=parent["id"])
        body = assert_problem(await client.delete(f"/v1/clients/{parent['id']}"), 409)
        assert "archive" in body["detail"].lower()
        assert (await client.get(f"/v1/clients/{parent['id']}")).status_code == 200
        assert (await client.get(f"/v1/clients/{child['id']}")).status_code == 200

    async def test_stale_if_match_is_412(self, client: AsyncClient) -> None:
        created = await create_client(client)
        await client.patch(f"/v1/clients/{created['id']}", json={"industry": "Mining"})
        response = await client.delete(f"/v1/clients/{created['id']}", headers={"If-Match": '"1"'})
        body = assert_problem(response, 412)
        assert response.headers["ETag"] == '"2"'
        assert body["detail"]
        assert (await client.get(f"/v1/clients/{created['id']}")).status_code == 200

    async def test_current_if_match_deletes(self, client: AsyncClient) -> None:
        created = await create_client(client)
        response = await client.delete(f"/v1/clients/{created['id']}", headers={"If-Match": '"1"'})
        assert response.status_code == 204

    async def test_unknown_id_is_404(self, client: AsyncClient) -> None:
        assert_problem(await client.delete(f"/v1/clients/{uuid.uuid4()}"), 404)

    async def test_malformed_id_is_422(self, client: AsyncClient) -> None:
        assert_invalid(await client.delete("/v1/clients/1"), "path.client_id")
