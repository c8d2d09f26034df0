"""Bearer JWT verification and the caller's principal.

Two modes: without ``AUTH__JWKS_URL``, tokens are HS256-signed with ``AUTH__JWT_SECRET``
(development, tests, a trusted gateway); with it, tokens are RS256 or ES256, verified
with the identity provider's key named by the token's ``kid`` (the key set is cached
for ``AUTH__JWKS_CACHE_S`` and fetched again when an unknown ``kid`` shows up, at most
every 30 s). Any other algorithm, ``none`` included, is a 401. ``iss``, ``aud``,
``exp`` and ``nbf`` are checked with ``AUTH__LEEWAY_S`` seconds of leeway. Claims:
``sub`` (a manager id or a service name) and ``roles`` (a list of :class:`Role` values).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

import httpx
import jwt
from cachetools import TLRUCache
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.config import Settings
from app.core.errors import Forbidden, Unauthorized

ALGORITHMS = ["HS256"]


class Role(StrEnum):
    admin = "admin"
    sales_manager = "sales_manager"
    account_manager = "account_manager"
    viewer = "viewer"
    service = "service"


WRITE_ROLES = frozenset({Role.admin, Role.sales_manager, Role.account_manager})
LEAD_ROLES = frozenset({Role.admin, Role.sales_manager})


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the token subject, its roles and, when the subject is a manager id,
    that manager's id."""

    subject: str
    roles: frozenset[Role]
    manager_id: uuid.UUID | None

    def has_any(self, roles: frozenset[Role]) -> bool:
        return bool(self.roles & roles)


def mint_token(
    settings: Settings, subject: str, roles: list[Role], ttl_s: int | None = None
) -> str:
    """A signed HS256 token for development and tests (``ams token``)."""
    now = int(time.time())
    claims = {
        "sub": subject,
        "roles": [r.value for r in roles],
        "iss": settings.auth.issuer,
        "aud": settings.auth.audience,
        "iat": now,
        "nbf": now,
        "exp": now + (ttl_s or settings.auth.dev_token_ttl_s),
    }
    return jwt.encode(claims, settings.auth.jwt_secret.get_secret_value(), algorithm="HS256")


JWKS_ALGORITHMS = ("RS256", "ES256")
JWKS_MIN_REFRESH_S = 30.0


class JwksCache:
    """The signing keys published at a JWKS URL, by ``kid``; fetched with httpx (async),
    kept for ``ttl_s`` seconds and fetched again on an unknown ``kid`` (rate-limited)."""

    def __init__(
        self, url: str, ttl_s: float, timeout_s: float, http: httpx.AsyncClient | None = None
    ) -> None:
        self.url = url
        self.ttl_s = ttl_s
        self._http = http or httpx.AsyncClient(timeout=timeout_s)
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = -1e9
        self._lock = asyncio.Lock()

    async def _refresh(self) -> None:
        response = await self._http.get(self.url)
        response.raise_for_status()
        keys: dict[str, jwt.PyJWK] = {}
        document = response.json()
        entries = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(entries, list):
            raise ValueError("the JWKS has no list of keys")
        for data in entries:
            if not isinstance(data, dict):
                continue
            try:
                keys[str(data.get("kid", ""))] = jwt.PyJWK(data)
            except (jwt.PyJWKError, jwt.InvalidKeyError):
                continue  # a key type or algorithm we do not use
        self._keys = keys
        self._fetched_at = time.monotonic()

    async def key(self, kid: str | None) -> jwt.PyJWK | None:
        """The key for ``kid`` (``None``: the only key, if there is exactly one)."""
        async with self._lock:
            age = time.monotonic() - self._fetched_at
            known = (kid or "") in self._keys or (kid is None and len(self._keys) == 1)
            if age > self.ttl_s or (not known and age > JWKS_MIN_REFRESH_S):
                try:
                    await self._refresh()
                except (httpx.HTTPError, ValueError, TypeError, AttributeError) as exc:
                    if not self._keys:
                        raise Unauthorized("The identity provider's keys are unavailable.") from exc
        if kid is None:
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)

    async def aclose(self) -> None:
        await self._http.aclose()


@dataclass(frozen=True, slots=True)
class _Verified:
    """A token that passed verification: with what (settings, JWKS key) and until when."""

    principal: Principal
    settings: Settings
    key: jwt.PyJWK | None  # the JWKS key it was verified with (None: the HS256 secret)
    valid_until: float  # Unix seconds: exp + leeway, when decode would start to refuse it


class VerifiedTokens:
    """Bounded LRU of verified tokens by their exact text (``cachetools.TLRUCache``, each
    entry expiring at its own ``valid_until``), so a client sending the same bearer token
    on every request pays for one HMAC/RSA check and claim parsing, not one per request.
    An entry is used only before its ``exp`` (+ leeway), with the same settings object
    and, under a JWKS, only while the key set still holds the very key it was verified
    with (so rotation and refresh behave as without the cache). Only successes are kept;
    every failure is verified again."""

    def __init__(self, maxsize: int = 4096) -> None:
        self.maxsize = maxsize
        self._entries: TLRUCache[str, _Verified] = TLRUCache(
            maxsize, ttu=_valid_until, timer=time.time
        )

    def get(self, token: str, settings: Settings) -> _Verified | None:
        entry = self._entries.get(token)
        if entry is None or entry.settings is not settings:
            return None
        return entry

    def put(self, token: str, entry: _Verified) -> None:
        self._entries[token] = entry

    def clear(self) -> None:
        self._entries.clear()


def _valid_until(_token: str, entry: _Verified, _now: float) -> float:
    return entry.valid_until


verified_tokens = VerifiedTokens()


async def verify_token(settings: Settings, token: str, jwks: JwksCache | None) -> Principal:
    """Check the token's algorithm and key (HS256 secret, or the JWKS key of its ``kid``),
    then its claims; a token verified before is answered from :data:`verified_tokens`.
    Raises Unauthorized."""
    cached = verified_tokens.get(token, settings)
    if cached is not None and jwks is None and cached.key is None:
        return cached.principal
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError as exc:
        raise Unauthorized("The token is malformed.") from exc
    algorithm = header.get("alg")
    if jwks is None:
        if algorithm not in ALGORITHMS:
            raise Unauthorized(f"Tokens must be signed with {', '.join(ALGORITHMS)}.")
        principal, expires = decode_token(settings, token)
        verified_tokens.put(token, _Verified(principal, settings, None, expires))
        return principal
    if algorithm not in JWKS_ALGORITHMS:
        raise Unauthorized(f"Tokens must be signed with {', '.join(JWKS_ALGORITHMS)}.")
    raw_kid = header.get("kid")
    kid = raw_kid if isinstance(raw_kid, str) else None
    # The same key lookup with or without a cached result (refresh, rotation, rate limit).
    key = await jwks.key(kid)
    if key is None:
        raise Unauthorized("The token's signing key is unknown.")
    if cached is not None and cached.key is key:
        return cached.principal
    if key.algorithm_name != algorithm:
        raise Unauthorized("The token's algorithm does not match its key.")
    principal, expires = decode_token(settings, token, key=key.key, algorithms=[str(algorithm)])
    verified_tokens.put(token, _Verified(principal, settings, key, expires))
    return principal


def decode_token(
    settings: Settings, token: str, *, key: Any = None, algorithms: list[str] | None = None
) -> tuple[Principal, float]:
    """Verify ``token`` (with the HS256 secret unless ``key`` is given) and build the
    principal; also the Unix time from which the token is refused (``exp`` + leeway).

    Raises:
        Unauthorized: bad signature, wrong algorithm (``none`` included), wrong issuer or
            audience, expired, not yet valid, or claims missing.
    """
    try:
        claims = jwt.decode(
            token,
            key if key is not None else settings.auth.jwt_secret.get_secret_value(),
            algorithms=algorithms or ALGORITHMS,
            audience=settings.auth.audience,
            issuer=settings.auth.issuer,
            leeway=settings.auth.leeway_s,
            options={"require": ["exp", "sub", "iss", "aud"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("The token has expired.") from exc
    except jwt.ImmatureSignatureError as exc:
        raise Unauthorized("The token is not valid yet.") from exc
    except jwt.InvalidTokenError as exc:
        raise Unauthorized("The token is invalid.") from exc
    raw_roles = claims.get("roles", [])
    if not isinstance(raw_roles, list) or not all(isinstance(r, str) for r in raw_roles):
        raise Unauthorized("The token's roles claim must be a list of strings.")
    roles = frozenset(Role(r) for r in raw_roles if r in Role.__members__)
    subject = str(claims["sub"])
    try:
        manager_id: uuid.UUID | None = uuid.UUID(subject)
    except ValueError:
        manager_id = None
    # PyJWT has checked exp is a number.
    expires = float(claims["exp"]) + settings.auth.leeway_s
    return Principal(subject=subject, roles=roles, manager_id=manager_id), expires


_bearer = HTTPBearer(auto_error=False, description="JWT bearer token (see README: `ams token`).")


async def get_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The authenticated caller; 401 when the bearer token is missing or invalid."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("A bearer token is required.")
    principal = await verify_token(
        request.app.state.settings,
        credentials.credentials,
        getattr(request.app.state, "jwks", None),
    )
    request.state.principal = principal
    if not principal.roles:
        # Secure by default: a valid token without a known role may do nothing.
        raise Forbidden("The token carries no known role.")
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def require_roles(*roles: Role) -> object:
    """Dependency: the caller must hold one of ``roles`` (403 otherwise)."""
    allowed = frozenset(roles)

    async def check(principal: CurrentPrincipal) -> Principal:
        if not principal.has_any(allowed):
            raise Forbidden(
                "Your role may not do this; it needs one of: "
                + ", ".join(sorted(r.value for r in allowed))
                + "."
            )
        return principal

    return Depends(check)


async def _writer(principal: CurrentPrincipal) -> Principal:
    if not principal.has_any(WRITE_ROLES):
        raise Forbidden("Your role is read-only.")
    return principal


Writer = Annotated[Principal, Depends(_writer)]


async def _lead(principal: CurrentPrincipal) -> Principal:
    if not principal.has_any(LEAD_ROLES):
        raise Forbidden("Only admin and sales_manager may do this.")
    return principal


# Staffing decisions: creating clients, assigning managers, handovers, absences, quotas.
Lead = Annotated[Principal, Depends(_lead)]
