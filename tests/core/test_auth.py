"""Bearer JWT authentication and role checks, through HTTP."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from httpx import AsyncClient, Response

from app.config import Settings
from app.core.auth import Role
from tests.assertions import assert_problem
from tests.conftest import make_token
from tests.factories import create_client, create_manager


def _claims(settings: Settings, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": "test-auth",
        "roles": ["admin"],
        "iss": settings.auth.issuer,
        "aud": settings.auth.audience,
        "iat": now,
        "nbf": now,
        "exp": now + 600,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _signed(
    settings: Settings, secret: str | None = None, alg: str = "HS256", **claims: Any
) -> str:
    key = secret or settings.auth.jwt_secret.get_secret_value()
    return jwt.encode(_claims(settings, **claims), key, algorithm=alg)


def _b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unsigned(settings: Settings) -> str:
    """A hand-built ``alg: none`` token: header.claims. with an empty signature."""
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims(settings))}."


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_unauthorized(response: Response) -> None:
    assert_problem(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer"), response.headers


BAD_TOKENS: dict[str, Callable[[Settings], str]] = {
    "garbage": lambda s: "not.a.jwt",
    "one_segment": lambda s: "abcdef",
    "expired": lambda s: _signed(s, exp=int(time.time()) - 3600, iat=int(time.time()) - 7200),
    "not_yet_valid": lambda s: _signed(s, nbf=int(time.time()) + 3600),
    "other_secret": lambda s: _signed(s, secret="another-secret-another-secret-0123456789"),
    "alg_none": _unsigned,
    "hs512": lambda s: _signed(s, alg="HS512"),
    "wrong_audience": lambda s: _signed(s, aud="someone-else"),
    "wrong_issuer": lambda s: _signed(s, iss="evil-issuer"),
    "no_exp": lambda s: _signed(s, exp=None),
    "no_sub": lambda s: _signed(s, sub=None),
    "no_aud": lambda s: _signed(s, aud=None),
    "roles_not_a_list": lambda s: _signed(s, roles="admin"),
    "tampered_claims": lambda s: ".".join(
        [
            _signed(s, roles=["viewer"]).split(".")[0],
            _b64(_claims(s, roles=["admin"])),
            _signed(s, roles=["viewer"]).split(".")[2],
        ]
    ),
}


class TestAuthentication:
    async def test_missing_token_is_401(self, anon: AsyncClient) -> None:
        assert_unauthorized(await anon.get("/v1/clients"))

    async def test_non_bearer_header_is_401(
        self, anon: AsyncClient, subtests: pytest.Subtests
    ) -> None:
        for scheme in ("Basic dXNlcjpwYXNz", "Token abc", "Bearer", "Bearer  "):
            with subtests.test(authorization=scheme):
                response = await anon.get("/v1/clients", headers={"Authorization": scheme})
                assert_unauthorized(response)

    @pytest.mark.filterwarnings("ignore:The HMAC key")
    async def test_bad_token_is_401(
        self, anon: AsyncClient, settings: Settings, subtests: pytest.Subtests
    ) -> None:
        for kind, make in BAD_TOKENS.items():
            with subtests.test(kind=kind):
                response = await anon.get("/v1/clients", headers=_bearer(make(settings)))
                assert_unauthorized(response)

    async def test_bad_token_cannot_write(
        self, anon: AsyncClient, client: AsyncClient, settings: Settings, subtests: pytest.Subtests
    ) -> None:
        for kind in ("alg_none", "other_secret", "expired", "wrong_audience"):
            with subtests.test(kind=kind):
                response = await anon.post(
                    "/v1/clients",
                    json={"name": "Intruder", "segment": "key", "country": "HU", "currency": "HUF"},
                    headers=_bearer(BAD_TOKENS[kind](settings)),
                )
                assert_unauthorized(response)
        assert (await client.get("/v1/clients")).json()["items"] == []

    async def test_malformed_roles_claim_is_401(
        self, anon_lenient: AsyncClient, settings: Settings, subtests: pytest.Subtests
    ) -> None:
        """A validly signed token whose ``roles`` claim has the wrong shape is refused
        as invalid, never a 500."""
        roles_claims: list[Any] = [[{"name": "admin"}], [["admin"]], {"admin": True}, "admin"]
        for roles in roles_claims:
            with subtests.test(roles=roles):
                token = _signed(settings, roles=roles)
                response = await anon_lenient.get("/v1/clients", headers=_bearer(token))
                assert_unauthorized(response)

    async def test_valid_token_is_accepted(self, anon: AsyncClient, settings: Settings) -> None:
        response = await anon.get("/v1/clients", headers=_bearer(_signed(settings)))
        assert response.status_code == 200

    async def test_lower_case_bearer_scheme_is_accepted(
        self, anon: AsyncClient, settings: Settings
    ) -> None:
        headers = {"Authorization": f"bearer {_signed(settings)}"}
        assert (await anon.get("/v1/clients", headers=headers)).status_code == 200

    async def test_expiry_within_leeway_is_accepted(
        self, anon: AsyncClient, settings: Settings
    ) -> None:
        token = _signed(settings, exp=int(time.time()) - 5)
        assert (await anon.get("/v1/clients", headers=_bearer(token))).status_code == 200

    @pytest.mark.parametrize(
        "path", ["/v1/clients", "/v1/managers", f"/v1/clients/{'0' * 8}-0000-4000-8000-{'0' * 12}"]
    )
    async def test_every_v1_route_needs_a_token(self, anon: AsyncClient, path: str) -> None:
        assert_unauthorized(await anon.get(path))

    async def test_health_live_needs_no_token(self, anon: AsyncClient) -> None:
        response = await anon.get("/health/live")
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}

    async def test_health_ready_needs_no_token(self, anon: AsyncClient) -> None:
        assert (await anon.get("/health/ready")).status_code == 200


class TestRoles:
    @pytest.mark.parametrize("role", [Role.viewer, Role.service])
    async def test_read_only_roles_may_read(
        self, client: AsyncClient, settings: Settings, role: Role
    ) -> None:
        created = await create_client(client)
        headers = _bearer(make_token(settings, role))
        assert (await client.get("/v1/clients", headers=headers)).status_code == 200
        fetched = await client.get(f"/v1/clients/{created['id']}", headers=headers)
        assert fetched.status_code == 200
        assert (await client.get("/v1/managers", headers=headers)).status_code == 200

    @pytest.mark.parametrize("role", [Role.viewer, Role.service])
    async def test_read_only_roles_may_not_write_clients(
        self, client: AsyncClient, settings: Settings, role: Role
    ) -> None:
        created = await create_client(client)
        url = f"/v1/clients/{created['id']}"
        headers = _bearer(make_token(settings, role))
        body = {"name": "Nope", "segment": "key", "country": "HU", "currency": "HUF"}
        assert_problem(await client.post("/v1/clients", json=body, headers=headers), 403)
        assert_problem(await client.patch(url, json={"name": "Nope"}, headers=headers), 403)
        assert_problem(await client.post(f"{url}/archive", headers=headers), 403)
        assert_problem(await client.post(f"{url}/restore", headers=headers), 403)
        assert_problem(await client.delete(url, headers=headers), 403)
        after = await client.get(url)
        assert after.json() == created
        assert len((await client.get("/v1/clients")).json()["items"]) == 1

    async def test_viewer_may_not_write_managers(
        self, client: AsyncClient, settings: Settings
    ) -> None:
        created = await create_manager(client)
        url = f"/v1/managers/{created['id']}"
        headers = _bearer(make_token(settings, Role.viewer))
        assert_problem(await client.patch(url, json={"region": "X"}, headers=headers), 403)
        assert_problem(await client.delete(url, headers=headers), 403)

    async def test_sales_manager_may_create_clients(
        self, client: AsyncClient, settings: Settings
    ) -> None:
        headers = _bearer(make_token(settings, Role.sales_manager))
        body = {"name": "Mine", "segment": "key", "country": "HU", "currency": "HUF"}
        response = await client.post("/v1/clients", json=body, headers=headers)
        assert response.status_code == 201, response.text

    async def test_account_manager_may_not_create_clients(
        self, client: AsyncClient, settings: Settings
    ) -> None:
        # Clients are created by leads (issue 7); an account manager edits their own.
        headers = _bearer(make_token(settings, Role.account_manager))
        body = {"name": "Mine", "segment": "key", "country": "HU", "currency": "HUF"}
        assert_problem(await client.post("/v1/clients", json=body, headers=headers), 403)

    async def test_account_manager_may_not_create_managers(
        self, client: AsyncClient, settings: Settings
    ) -> None:
        headers = _bearer(make_token(settings, Role.account_manager))
        response = await client.post(
            "/v1/managers",
            json={"email": "x@example.com", "full_name": "X"},
            headers=headers,
        )
        body = assert_problem(response, 403)
        assert body["detail"]

    async def test_token_without_a_known_role_may_not_read(
        self, anon: AsyncClient, settings: Settings, subtests: pytest.Subtests
    ) -> None:
        """Secure by default (DESIGN §3): every role is listed; a token holding none of
        them has no read right either."""
        for roles in ([], ["superuser"], ["ADMIN"], None):
            with subtests.test(roles=roles):
                token = _signed(settings, roles=roles)
                assert_problem(await anon.get("/v1/clients", headers=_bearer(token)), 403)

    async def test_token_without_roles_may_not_write(
        self, anon: AsyncClient, settings: Settings
    ) -> None:
        token = _signed(settings, roles=[])
        body = {"name": "Nope", "segment": "key", "country": "HU", "currency": "HUF"}
        assert_problem(await anon.post("/v1/clients", json=body, headers=_bearer(token)), 403)
