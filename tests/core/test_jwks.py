"""Bearer tokens verified against an identity provider's JWKS (issue 7, item 1).

The key set is served by an ``httpx.MockTransport`` (a fake identity provider that counts
its requests) and installed as ``app.state.jwks`` for one test only: the app is shared by
the whole session, so the fixture puts the previous state back afterwards. Tokens are
RS256 (RSA 2048) and ES256 (EC P-256), minted with PyJWT.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import FastAPI
from httpx import AsyncClient, Response
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from app.config import Settings
from app.core.auth import JwksCache, Role
from tests.assertions import assert_problem
from tests.conftest import make_token

JWKS_URL = "https://idp.example/.well-known/jwks.json"
PROBE = "/v1/sla-policies"  # any route behind authentication

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass
class SigningKey:
    kid: str
    alg: str
    private: PrivateKey

    def jwk(self) -> dict[str, Any]:
        public = self.private.public_key()
        data = (
            RSAAlgorithm.to_jwk(public, as_dict=True)
            if isinstance(public, rsa.RSAPublicKey)
            else ECAlgorithm.to_jwk(public, as_dict=True)
        )
        return {**data, "kid": self.kid, "use": "sig", "alg": self.alg}


def rsa_key(kid: str) -> SigningKey:
    return SigningKey(kid, "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048))


def ec_key(kid: str) -> SigningKey:
    return SigningKey(kid, "ES256", ec.generate_private_key(ec.SECP256R1()))


# Generating RSA keys is slow: one set for the module.
RSA_1 = rsa_key("rsa-1")
RSA_2 = rsa_key("rsa-2")
EC_1 = ec_key("ec-1")
STRANGER = rsa_key("rsa-1")  # same kid as RSA_1, another key: never published


@dataclass
class IdentityProvider:
    """A fake JWKS endpoint: publishes ``keys``, counts requests, can be made to fail."""

    keys: list[SigningKey] = field(default_factory=lambda: [RSA_1, EC_1])
    requests: int = 0
    status: int = 200
    body: Any = None  # served instead of the key set when set
    down: bool = False

    def handle(self, request: httpx.Request) -> httpx.Response:
        assert str(request.url) == JWKS_URL
        self.requests += 1
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        if self.body is not None:
            content = self.body if isinstance(self.body, bytes) else json.dumps(self.body).encode()
            return httpx.Response(self.status, content=content)
        return httpx.Response(self.status, json={"keys": [k.jwk() for k in self.keys]})


@dataclass
class Jwks:
    idp: IdentityProvider
    cache: JwksCache


async def _install(app: FastAPI, idp: IdentityProvider, ttl_s: float) -> AsyncIterator[Jwks]:
    cache = JwksCache(
        JWKS_URL, ttl_s, 1.0, http=httpx.AsyncClient(transport=httpx.MockTransport(idp.handle))
    )
    previous = getattr(app.state, "jwks", None)
    app.state.jwks = cache
    try:
        yield Jwks(idp, cache)
    finally:
        await cache.aclose()
        if previous is None:
            del app.state.jwks
        else:
            app.state.jwks = previous


@pytest.fixture
async def jwks(app: FastAPI) -> AsyncIterator[Jwks]:
    """The shared app verifying tokens against the fake IdP (keys cached 300 s)."""
    async for installed in _install(app, IdentityProvider(), ttl_s=300):
        yield installed


@pytest.fixture
async def jwks_no_cache(app: FastAPI) -> AsyncIterator[Jwks]:
    """Like ``jwks`` with a cache lifetime of 0 s: every request fetches the key set."""
    async for installed in _install(app, IdentityProvider(), ttl_s=0):
        yield installed


@pytest.fixture
def refetch_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lift the 30 s rate limit on refetching for an unknown ``kid`` (time cannot pass in
    a test)."""
    monkeypatch.setattr("app.core.auth.JWKS_MIN_REFRESH_S", 0.0)


def claims(settings: Settings, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    values: dict[str, Any] = {
        "sub": "idp-user",
        "roles": [Role.admin.value],
        "iss": settings.auth.issuer,
        "aud": settings.auth.audience,
        "iat": now,
        "nbf": now,
        "exp": now + 600,
    }
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not None}


def mint(
    settings: Settings,
    key: SigningKey,
    *,
    alg: str | None = None,
    kid: str | None = "",
    **overrides: Any,
) -> str:
    """A token signed by ``key`` (header ``kid`` = the key's unless given; ``None``: no kid)."""
    headers = {} if kid is None else {"kid": kid or key.kid}
    return jwt.encode(
        claims(settings, **overrides), key.private, algorithm=alg or key.alg, headers=headers
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def handmade(header: dict[str, Any], payload: dict[str, Any], secret: bytes | None) -> str:
    """A token PyJWT would refuse to build: ``alg: none`` or HS256 keyed with a public key."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
    if secret is None:
        return signing_input + "."
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


async def get(http: AsyncClient, token: str) -> Response:
    return await http.get(PROBE, headers={"Authorization": f"Bearer {token}"})


def assert_unauthorized(response: Response) -> None:
    assert_problem(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer"), response.headers


class TestValidTokens:
    async def test_rs256_and_es256_are_accepted_and_the_key_set_is_cached(
        self, anon_lenient: AsyncClient, settings: Settings, jwks: Jwks
    ) -> None:
        for key in (RSA_1, EC_1, RSA_1, EC_1):
            response = await get(anon_lenient, mint(settings, key))
            assert response.status_code == 200, response.text
        assert jwks.idp.requests == 1

    async def test_claims_become_the_principal(
        self, anon_lenient: AsyncClient, settings: Settings, jwks: Jwks
    ) -> None:
        """``roles`` decide what the caller may do: a viewer token reads but cannot write."""
        token = mint(settings, EC_1, roles=["viewer"], sub="dashboard")
        assert (await get(anon_lenient, token)).status_code == 200
        response = await anon_lenient.post(
            "/v1/sla-policies",
            json={"severity": "low", "first_response_hours": 1, "resolution_hours": 2},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert_problem(response, 403)

    async def test_a_token_without_kid_uses_the_only_key(
        self, anon_lenient: AsyncClient, settings: Settings, jwks: Jwks
    ) -> None:
        jwks.idp.keys = [EC_1]
        assert (await get(anon_lenient, mint(settings, EC_1, kid=None))).status_code == 200

    async def test_a_token_without_kid_is_refused_when_several_keys_exist(
        self, anon_lenient: AsyncClient, settings: Settings, jwks: Jwks
    ) -> None:
        assert_unauthorized(await get(anon_lenient, mint(settings, EC_1, kid=None)))


class TestKeyRefresh:
    async def test_unknown_kid_refetches_once_then_401(
        self, anon_lenient: AsyncClient, settings: Settings, jwks: Jwks, refetch_at_once: None
    ) -> None:
        assert (await get(anon_lenient, mint(settings, RSA_1))).status_code == 200
        assert jwks.idp.requests == 1
        assert_unauthorized(await get(anon_lenient, mint(settings, RSA_2)))
        assert jwks.idp.requests == 2  # fetched again once, still unknown
        # A known kid is served from the cache: no fetch.
        assert (await get(anon_lenient, mint(settings, EC_1))).status_code == 200
        assert jwks.idp.requests == 2

    async def test_refetching_for_unknown_kids_is_rate_limited(
        self, anon_lenient: AsyncClient, settings: Settings, jwks: Jwks
    ) -> None:
        """Within 30 s of the last fetch, unknown kids do not hammer the IdP."""
        assert (await get(anon_lenient, mint(settings, RSA_1))).status_code == 200
        for kid in ("nope-1", "nope-2", "nope-3"):
            assert_unauthorized(await get(anon_lenient, mint(settings, RSA_1, kid=kid)))
        assert jwks.idp.requests == 1

    async def test_key_rotation_is_picked_up(
        self, anon_lenient: AsyncClient, settings: Settings, jwks: Jwks, refetch_at_once: None
    ) -> None:
        assert (await get(anon_lenient, mint(settings, RSA_1))).status_code == 200
        jwks.idp.keys = [RSA_2, EC_1]  # the IdP rotates rsa-1 out and rsa-2 in
        assert (await get(anon_lenient, mint(settings, RSA_2))).status_code == 200
        assert jwks.idp.requests == 2
        # rsa-1 is gone from the refreshed set: its tokens are refused (after one refetch).
        assert_unauthorized(await get(anon_lenient, mint(settings, RSA_1)))
        assert jwks.idp.requests == 3
        assert (await get(anon_lenient, mint(settings, RSA_2))).status_code == 200
        assert jwks.idp.requests == 3

    async def test_expired_cache_is_refreshed(
        self, anon_lenient: AsyncClient, settings: Settings, jwks_no_cache: Jwks
    ) -> None:
        for _ in range(3):
            assert (await get(anon_lenient, mint(settings, EC_1))).status_code == 200
        assert jwks_no_cache.idp.requests == 3

    async def test_idp_down_after_a_fetch_keeps_the_known_keys(
        self, anon_lenient: AsyncClient, settings: Settings, jwks_no_cache: Jwks
    ) -> None:
        assert (await get(anon_lenient, mint(settings, EC_1))).status_code == 200
        jwks_no_cache.idp.down = True
        assert (await get(anon_lenient, mint(settings, EC_1))).status_code == 200
        jwks_no_cache.idp.down = False
        jwks_no_cache.idp.status = 503
        jwks_no_cache.idp.body = {"error": "maintenance"}
        assert (await get(anon_lenient, mint(settings, RSA_1))).status_code == 200
        assert jwks_no_cache.idp.requests == 3


class TestIdentityProviderUnavailable:
    """The key set cannot be had at first use: every token is a 401 problem, never a 500."""

    @pytest.mark.parametrize(
        "failure",
        [
            {"down": True},
            {"status": 503, "body": {"error": "unavailable"}},
            {"status": 404, "body": b"not found"},
            {"body": b"<html>not json</html>"},
            {"body": {"keys": []}},
            {"body": {"keys": [{"kty": "RSA", "kid": "broken", "n": "x", "e": "AQAB"}]}},
            # Well-formed JSON of the wrong shape.
            {"body": [{"kid": "rsa-1"}]},
            {"body": {"keys": ["rsa-1"]}},
            {"body": {"keys": {"rsa-1": {}}}},
        ],
        ids=[
            "connection-refused",
            "503",
            "404",
            "not-json",
            "no-keys",
            "unusable-key",
            "json-list",
            "key-not-an-object",
            "keys-not-a-list",
        ],
    )
    async def test_401_problem(
        self,
        anon_lenient: AsyncClient,
        settings: Settings,
        jwks: Jwks,
        failure: dict[str, Any],
    ) -> None:
        for name, value in failure.items():
            setattr(jwks.idp, name, value)
        assert_unauthorized(await get(anon_lenient, mint(settings, RSA_1)))
        assert jwks.idp.requests == 1


class TestRefusedTokens:
    async def test_hs256_is_refused_when_a_jwks_is_configured(
        self, anon_lenient: AsyncClient, settings: Settings, jwks: Jwks
    ) -> None:
        """Neither a token signed with the (development) shared secret nor one "signed"
        with HS256 keyed by the IdP's public key (algorithm confusion)."""
        assert_unauthorized(await get(anon_lenient, make_token(settings, Role.admin)))
        pem = RSA_1.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        confused = handmade({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}, claims(settings), pem)
        assert_unauthorized(await get(anon_lenient, confused))

    async def test_alg_none_is_refused(
        self, anon_lenient: AsyncClient, settings: Settings, jwks: Jwks
    ) -> None:
        for alg in ("none", "None", "NONE"):
            token = handmade({"alg": alg, "typ": "JWT", "kid": "rsa-1"}, claims(settings), None)
            assert_unauthorized(await get(anon_lenient, token))

    @pytest.mark.parametrize(("key", "alg"), [(RSA_1, "RS512"), (RSA_1, "PS256"), (EC_1, "ES384")])
    async def test_other_asymmetric_algorithms_are_refused(
        self, anon_lenient: AsyncClient, settings: Settings, jwks: Jwks, key: SigningKey, alg: str
    ) -> None:
        if alg == "ES384":  # needs a P-384 key to sign; the kid still names the P-256 one
            other = SigningKey(key.kid, alg, ec.generate_private_key(ec.SECP384R1()))
            token = mint(settings, other)
        else:
            token = mint(settings, key, alg=alg)
        assert_unauthorized(await get(anon_lenient, token))

    @pytest.mark.parametrize(
        ("signer", "kid"), [(RSA_1, "ec-1"), (EC_1, "rsa-1")], ids=["rs256-ec-kid", "es256-rsa-kid"]
    )
    async def test_algorithm_must_match_the_key_it_names(
        self,
        anon_lenient: AsyncClient,
        settings: Settings,
        jwks: Jwks,
        signer: SigningKey,
        kid: str,
    ) -> None:
        """An allowed algorithm with the kid of a key of the other type (RS256 header,
        EC key) is a 401, not a crash in the verifier."""
        assert_unauthorized(await get(anon_lenient, mint(settings, signer, kid=kid)))

    async def test_signature_by_an_unpublished_key_is_refused(
        self, anon_lenient: AsyncClient, settings: Settings, jwks: Jwks
    ) -> None:
        assert_unauthorized(await get(anon_lenient, mint(settings, STRANGER)))

    async def test_tampered_claims_are_refused(
        self, anon_lenient: AsyncClient, settings: Settings, jwks: Jwks
    ) -> None:
        header, _, signature = mint(settings, EC_1, roles=["viewer"]).split(".")
        forged = f"{header}.{_b64(json.dumps(claims(settings)).encode())}.{signature}"
        assert_unauthorized(await get(anon_lenient, forged))

    @pytest.mark.parametrize(
        "overrides",
        [
            {"aud": "someone-else"},
            {"aud": None},
            {"iss": "https://evil.example"},
            {"iss": None},
            {"exp": None},
            {"sub": None},
        ],
        ids=["wrong-aud", "no-aud", "wrong-iss", "no-iss", "no-exp", "no-sub"],
    )
    async def test_claims_are_checked(
        self,
        anon_lenient: AsyncClient,
        settings: Settings,
        jwks: Jwks,
        overrides: dict[str, Any],
    ) -> None:
        for key in (RSA_1, EC_1):
            assert_unauthorized(await get(anon_lenient, mint(settings, key, **overrides)))


class TestClockLeeway:
    """``exp`` and ``nbf`` are checked with ``AUTH__LEEWAY_S`` (30 s) of leeway."""

    async def test_expiry(self, anon_lenient: AsyncClient, settings: Settings, jwks: Jwks) -> None:
        leeway = settings.auth.leeway_s
        now = int(time.time())
        within = mint(settings, RSA_1, exp=now - leeway + 10, iat=now - 600, nbf=now - 600)
        assert (await get(anon_lenient, within)).status_code == 200
        beyond = mint(settings, RSA_1, exp=now - leeway - 10, iat=now - 600, nbf=now - 600)
        response = await get(anon_lenient, beyond)
        assert_unauthorized(response)
        assert "expired" in response.json()["detail"]

    async def test_not_before(
        self, anon_lenient: AsyncClient, settings: Settings, jwks: Jwks
    ) -> None:
        leeway = settings.auth.leeway_s
        now = int(time.time())
        within = mint(settings, EC_1, nbf=now + leeway - 10)
        assert (await get(anon_lenient, within)).status_code == 200
        response = await get(anon_lenient, mint(settings, EC_1, nbf=now + leeway + 60))
        assert_unauthorized(response)
        assert "not valid yet" in response.json()["detail"]
