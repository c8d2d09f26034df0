"""HTTP behaviour of /v1/managers."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from httpx import AsyncClient

from app.config import Settings
from app.core.auth import Role
from tests.assertions import assert_invalid, assert_problem
from tests.conftest import make_token
from tests.factories import create_manager

VALID: dict[str, Any] = {
    "email": "valid@example.com",
    "full_name": "Valid Manager",
    "role": "account_manager",
    "time_zone": "Europe/Budapest",
}

BAD_CREATE: list[tuple[dict[str, Any], str]] = [
    ({"email": "not-an-email"}, "body.email"),
    ({"email": "a@b"}, "body.email"),
    ({"email": ""}, "body.email"),
    ({"full_name": ""}, "body.full_name"),
    ({"full_name": "  \t "}, "body.full_name"),
    ({"role": "boss"}, "body.role"),
    ({"time_zone": "Europe/Atlantis"}, "body.time_zone"),
    ({"time_zone": ""}, "body.time_zone"),
    ({"reports_to_id": "not-a-uuid"}, "body.reports_to_id"),
    ({"active": "maybe"}, "body.active"),
    ({"region": ""}, "body.region"),
    ({"external_ref": "x" * 101}, "body.external_ref"),
    ({"salary": 1}, "body.salary"),
]

BAD_QUERY: list[tuple[dict[str, str], str]] = [
    ({"role": "boss"}, "query.role"),
    ({"active": "perhaps"}, "query.active"),
    ({"reports_to_id": "x"}, "query.reports_to_id"),
    ({"updated_since": "2024-01-01T00:00:00"}, "query.updated_since"),
    ({"limit": "0"}, "query.limit"),
    ({"limit": "501"}, "query.limit"),
    ({"colour": "red"}, "query.colour"),
]


def _with(**fields: Any) -> dict[str, Any]:
    body = dict(VALID)
    body.update(fields)
    return body


def _as(settings: Settings, *roles: Role) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token(settings, *roles)}"}


async def _ids(http: AsyncClient, **params: Any) -> list[str]:
    response = await http.get("/v1/managers", params=params)
    assert response.status_code == 200, response.text
    return [m["id"] for m in response.json()["items"]]


class TestCreateManager:
    @pytest.mark.parametrize(
        "name", ["محمد الأحمد", "דוד כהן", "Γιώργος Παπαδόπουλος", "Әлия Нұрланқызы", "Ödön Ács"]
    )
    async def test_round_trips_names_in_every_script(self, client: AsyncClient, name: str) -> None:
        created = await create_manager(client, full_name=name)
        fetched = await client.get(f"/v1/managers/{created['id']}")
        assert fetched.status_code == 200
        assert fetched.json()["full_name"] == name

    async def test_answers_201_with_etag_location_and_defaults(self, client: AsyncClient) -> None:
        response = await client.post(
            "/v1/managers", json={"email": "new@example.com", "full_name": "New Person"}
        )
        assert response.status_code == 201, response.text
        body = response.json()
        assert response.headers["ETag"] == '"1"'
        assert response.headers["Location"] == f"/v1/managers/{body['id']}"
        assert body["role"] == "account_manager"
        assert body["time_zone"] == "UTC"
        assert body["active"] is True
        assert body["version"] == 1

    async def test_rejects_bad_field_naming_it(
        self, client: AsyncClient, subtests: pytest.Subtests
    ) -> None:
        for fields, field in BAD_CREATE:
            with subtests.test(field=field, fields=fields):
                assert_invalid(await client.post("/v1/managers", json=_with(**fields)), field)
        for missing in ("email", "full_name"):
            with subtests.test(missing=missing):
                body = dict(VALID)
                del body[missing]
                assert_invalid(await client.post("/v1/managers", json=body), f"body.{missing}")
        assert await _ids(client) == []

    async def test_rejects_unknown_lead(self, client: AsyncClient) -> None:
        response = await client.post("/v1/managers", json=_with(reports_to_id=str(uuid.uuid4())))
        assert_invalid(response, "body.reports_to_id")

    @pytest.mark.parametrize(
        ("first", "second"),
        [
            ("anna.kovacs@example.com", "Anna.Kovacs@example.com"),
            ("anna.kovacs@example.com", "ANNA.KOVACS@EXAMPLE.COM"),
            ("Anna@Example.com", "anna@example.com"),
        ],
    )
    async def test_email_differing_only_in_case_is_409(
        self, client: AsyncClient, first: str, second: str
    ) -> None:
        await create_manager(client, email=first)
        body = assert_problem(await client.post("/v1/managers", json=_with(email=second)), 409)
        assert body["errors"][0]["field"] == "body.email"
        assert len(await _ids(client)) == 1

    async def test_duplicate_external_ref_is_409(self, client: AsyncClient) -> None:
        await create_manager(client, external_ref="HR-1")
        response = await client.post("/v1/managers", json=_with(external_ref="HR-1"))
        assert_problem(response, 409)

    async def test_sales_manager_may_create(self, client: AsyncClient, settings: Settings) -> None:
        response = await client.post(
            "/v1/managers", json=VALID, headers=_as(settings, Role.sales_manager)
        )
        assert response.status_code == 201, response.text

    async def test_other_roles_may_not_create(
        self, client: AsyncClient, settings: Settings, subtests: pytest.Subtests
    ) -> None:
        for role in (Role.account_manager, Role.viewer, Role.service):
            with subtests.test(role=role.value):
                response = await client.post(
                    "/v1/managers", json=VALID, headers=_as(settings, role)
                )
                assert_problem(response, 403)
        assert await _ids(client) == []


class TestGetManager:
    async def test_returns_the_manager_and_its_etag(self, client: AsyncClient) -> None:
        created = await create_manager(client)
        response = await client.get(f"/v1/managers/{created['id']}")
        assert response.status_code == 200
        assert response.headers["ETag"] == '"1"'
        assert response.json() == created

    async def test_viewer_may_read(self, client: AsyncClient, settings: Settings) -> None:
        created = await create_manager(client)
        response = await client.get(
            f"/v1/managers/{created['id']}", headers=_as(settings, Role.viewer)
        )
        assert response.status_code == 200

    async def test_unknown_id_is_404_problem(self, client: AsyncClient) -> None:
        assert_problem(await client.get(f"/v1/managers/{uuid.uuid4()}"), 404)

    async def test_malformed_id_is_422(self, client: AsyncClient) -> None:
        assert_invalid(await client.get("/v1/managers/bob"), "path.manager_id")


class TestListManagers:
    async def test_filters_by_role(self, client: AsyncClient) -> None:
        lead = await create_manager(client, role="team_lead")
        await create_manager(client, role="account_manager")
        assert await _ids(client, role="team_lead") == [lead["id"]]

    async def test_filters_by_active(self, client: AsyncClient) -> None:
        active = await create_manager(client)
        inactive = await create_manager(client, active=False)
        assert await _ids(client, active="true") == [active["id"]]
        assert await _ids(client, active="false") == [inactive["id"]]
        assert len(await _ids(client)) == 2

    async def test_filters_by_reports_to(self, client: AsyncClient) -> None:
        lead = await create_manager(client, role="team_lead")
        report = await create_manager(client, reports_to_id=lead["id"])
        await create_manager(client)
        assert await _ids(client, reports_to_id=lead["id"]) == [report["id"]]

    async def test_filters_by_region(self, client: AsyncClient) -> None:
        emea = await create_manager(client, region="EMEA")
        await create_manager(client, region="APAC")
        assert await _ids(client, region="EMEA") == [emea["id"]]

    @pytest.mark.parametrize(
        ("full_name", "email", "query"),
        [
            ("Kovács Éva", "eva@example.com", "kovacs"),
            ("Ζωή Νικολάου", "zoi@example.com", "ζωη"),
            ("عائشة الأحمد", "aisha@example.com", "الاحمد"),
            ("שָׂרָה לֵוִי", "sarah@example.com", "שרה"),
            ("Plain Name", "unique.handle@example.com", "UNIQUE.HANDLE"),
        ],
    )
    async def test_search_by_name_or_email(
        self, client: AsyncClient, full_name: str, email: str, query: str
    ) -> None:
        wanted = await create_manager(client, full_name=full_name, email=email)
        await create_manager(client, full_name="Someone Else", email="other@example.com")
        assert await _ids(client, q=query) == [wanted["id"]]

    async def test_search_wildcards_are_literal(self, client: AsyncClient) -> None:
        wanted = await create_manager(client, email="first_last@example.com")
        await create_manager(client, email="firstxlast@example.com")
        assert await _ids(client, q="first_last") == [wanted["id"]]

    async def test_rejects_bad_query_naming_it(
        self, client: AsyncClient, subtests: pytest.Subtests
    ) -> None:
        for params, field in BAD_QUERY:
            with subtests.test(params=params):
                assert_invalid(await client.get("/v1/managers", params=params), field)


class TestUpdateManager:
    async def test_changes_only_the_given_fields(self, client: AsyncClient) -> None:
        created = await create_manager(client, region="EMEA")
        response = await client.patch(
            f"/v1/managers/{created['id']}", json={"active": False}, headers={"If-Match": '"1"'}
        )
        assert response.status_code == 200, response.text
        assert response.json()["active"] is False
        assert response.json()["region"] == "EMEA"
        assert response.headers["ETag"] == '"2"'

    async def test_stale_if_match_is_412(self, client: AsyncClient) -> None:
        created = await create_manager(client)
        await client.patch(f"/v1/managers/{created['id']}", json={"region": "EMEA"})
        response = await client.patch(
            f"/v1/managers/{created['id']}", json={"region": "APAC"}, headers={"If-Match": '"1"'}
        )
        assert_problem(response, 412)
        assert (await client.get(f"/v1/managers/{created['id']}")).json()["region"] == "EMEA"

    async def test_rejects_null_for_required_field(
        self, client: AsyncClient, subtests: pytest.Subtests
    ) -> None:
        created = await create_manager(client)
        url = f"/v1/managers/{created['id']}"
        for field in ("email", "full_name", "role", "time_zone", "active"):
            with subtests.test(field=field):
                assert_invalid(await client.patch(url, json={field: None}), f"body.{field}")
        assert (await client.get(url)).json() == created

    async def test_email_taken_in_another_case_is_409(self, client: AsyncClient) -> None:
        await create_manager(client, email="taken@example.com")
        other = await create_manager(client)
        response = await client.patch(
            f"/v1/managers/{other['id']}", json={"email": "TAKEN@example.com"}
        )
        assert_problem(response, 409)

    async def test_reports_to_cycle_is_422(self, client: AsyncClient) -> None:
        a = await create_manager(client)
        b = await create_manager(client, reports_to_id=a["id"])  # B reports to A
        response = await client.patch(f"/v1/managers/{a['id']}", json={"reports_to_id": b["id"]})
        assert_invalid(response, "body.reports_to_id")
        assert (await client.get(f"/v1/managers/{a['id']}")).json()["reports_to_id"] is None

    async def test_long_reports_to_cycle_is_422(self, client: AsyncClient) -> None:
        a = await create_manager(client)
        b = await create_manager(client, reports_to_id=a["id"])
        c = await create_manager(client, reports_to_id=b["id"])
        response = await client.patch(f"/v1/managers/{a['id']}", json={"reports_to_id": c["id"]})
        assert_invalid(response, "body.reports_to_id")

    async def test_reporting_to_oneself_is_422(self, client: AsyncClient) -> None:
        a = await create_manager(client)
        response = await client.patch(f"/v1/managers/{a['id']}", json={"reports_to_id": a["id"]})
        assert_invalid(response, "body.reports_to_id")

    async def test_unknown_lead_is_422(self, client: AsyncClient) -> None:
        a = await create_manager(client)
        response = await client.patch(
            f"/v1/managers/{a['id']}", json={"reports_to_id": str(uuid.uuid4())}
        )
        assert_invalid(response, "body.reports_to_id")

    async def test_account_manager_may_not_update(
        self, client: AsyncClient, settings: Settings
    ) -> None:
        created = await create_manager(client)
        response = await client.patch(
            f"/v1/managers/{created['id']}",
            json={"full_name": "Hacked"},
            headers=_as(settings, Role.account_manager),
        )
        assert_problem(response, 403)

    async def test_unknown_id_is_404(self, client: AsyncClient) -> None:
        response = await client.patch(f"/v1/managers/{uuid.uuid4()}", json={"region": "X"})
        assert_problem(response, 404)


class TestDeleteManager:
    async def test_deletes_a_fresh_manager(self, client: AsyncClient) -> None:
        created = await create_manager(client)
        assert (await client.delete(f"/v1/managers/{created['id']}")).status_code == 204
        assert_problem(await client.get(f"/v1/managers/{created['id']}"), 404)

    async def test_lead_with_reports_is_409(self, client: AsyncClient) -> None:
        lead = await create_manager(client)
        await create_manager(client, reports_to_id=lead["id"])
        body = assert_problem(await client.delete(f"/v1/managers/{lead['id']}"), 409)
        assert "deactivate" in body["detail"].lower()
        assert (await client.get(f"/v1/managers/{lead['id']}")).status_code == 200

    async def test_stale_if_match_is_412(self, client: AsyncClient) -> None:
        created = await create_manager(client)
        await client.patch(f"/v1/managers/{created['id']}", json={"region": "EMEA"})
        response = await client.delete(f"/v1/managers/{created['id']}", headers={"If-Match": '"1"'})
        assert_problem(response, 412)
        assert (await client.get(f"/v1/managers/{created['id']}")).status_code == 200

    async def test_unknown_id_is_404(self, client: AsyncClient) -> None:
        assert_problem(await client.delete(f"/v1/managers/{uuid.uuid4()}"), 404)
