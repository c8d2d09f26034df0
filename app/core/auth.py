"""Bearer JWT verification and the caller's principal.

Tokens are HS256-signed with ``AUTH__JWT_SECRET``; ``iss``, ``aud``, ``exp`` and ``nbf``
are checked with ``AUTH__LEEWAY_S`` seconds of leeway. Claims: ``sub`` (a manager id or a
service name) and ``roles`` (a list of :class:`Role` values).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

import jwt
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


def decode_token(settings: Settings, token: str) -> Principal:
    """Verify ``token`` and build the principal.

    Raises:
        Unauthorized: bad signature, wrong algorithm (``none`` included), wrong issuer or
            audience, expired, not yet valid, or claims missing.
    """
    try:
        claims = jwt.decode(
            token,
            settings.auth.jwt_secret.get_secret_value(),
            algorithms=ALGORITHMS,
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
    return Principal(subject=subject, roles=roles, manager_id=manager_id)


_bearer = HTTPBearer(auto_error=False, description="JWT bearer token (see README: `ams token`).")


async def get_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The authenticated caller; 401 when the bearer token is missing or invalid."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("A bearer token is required.")
    principal = decode_token(request.app.state.settings, credentials.credentials)
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
