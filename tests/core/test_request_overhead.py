"""The per-request machinery made cheap for issue 9 keeps its promises: reads run without
BEGIN/COMMIT and writes in one transaction, a pooled connection the server closed is
replaced at checkout (no pre-ping), verified tokens are cached only while they are valid,
and the one observability middleware keeps request ids, metrics labels and access lines."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import jwt
import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.config import Settings
from app.core import auth
from app.core.auth import Role, VerifiedTokens, mint_token, verify_token
from app.core.db import create_engine, create_sessionmaker
from app.core.errors import Unauthorized
from app.core.session import SessionDep
from app.main import create_app
from tests.factories import create_client

# now() is the start of the transaction: two statements see the same value only inside
# one transaction.
NOW = text("SELECT now()")


async def _one_transaction(session: AsyncSession) -> dict[str, bool]:
    first = (await session.execute(NOW)).scalar_one()
    second = (await session.execute(NOW)).scalar_one()
    return {"one_transaction": first == second}


@pytest.fixture
async def real_app(
    settings: Settings, database_url: str
) -> AsyncIterator[tuple[FastAPI, AsyncEngine]]:
    """An app on its own engine and pool (requests commit for real), with two routes
    that report whether their two statements ran in one transaction."""
    engine = create_engine(settings, database_url)
    app = create_app(settings)
    app.state.engine = engine
    app.state.sessionmaker = create_sessionmaker(engine)

    @app.get("/v1/test-transaction")
    async def read_transaction(session: SessionDep) -> dict[str, bool]:
        return await _one_transaction(session)

    @app.post("/v1/test-transaction")
    async def write_transaction(session: SessionDep) -> dict[str, bool]:
        return await _one_transaction(session)

    try:
        yield app, engine
    finally:
        await engine.dispose()


@pytest.fixture
async def real_client(
    real_app: tuple[FastAPI, AsyncEngine], token: str
) -> AsyncIterator[AsyncClient]:
    app, _ = real_app
    async with AsyncClient(
        transport=ASGITransport(app=app),
        base_url="http://test",
        headers={"Authorization": f"Bearer {token}"},
    ) as http:
        yield http


class TestTransactions:
    async def test_a_get_runs_without_begin(self, real_client: AsyncClient) -> None:
        response = await real_client.get("/v1/test-transaction")
        assert response.status_code == 200, response.text
        assert response.json() == {"one_transaction": False}

    async def test_a_write_runs_in_a_transaction(self, real_client: AsyncClient) -> None:
        response = await real_client.post("/v1/test-transaction")
        assert response.status_code == 200, response.text
        assert response.json() == {"one_transaction": True}

    async def test_reads_see_committed_writes(self, real_client: AsyncClient) -> None:
        created = await create_client(real_client)
        response = await real_client.get(f"/v1/clients/{created['id']}")
        assert response.status_code == 200, response.text
        assert response.json() == created
        assert response.headers["ETag"] == f'"{created["version"]}"'
        deleted = await real_client.delete(f"/v1/clients/{created['id']}")
        assert deleted.status_code == 204, deleted.text


class TestClosedConnections:
    async def test_a_connection_the_server_closed_is_replaced(
        self, real_app: tuple[FastAPI, AsyncEngine], real_client: AsyncClient, database_url: str
    ) -> None:
        """Without pre-ping, a pooled connection the server has closed (restart, idle
        timeout, terminated backend) is seen closed at checkout and replaced: the next
        request succeeds instead of failing once."""
        _, engine = real_app
        assert (await real_client.get("/v1/clients")).status_code == 200
        async with engine.connect() as conn:  # the one pooled connection
            pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        plain = make_url(database_url).set(drivername="postgresql")
        admin = await asyncpg.connect(plain.render_as_string(hide_password=False))
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        finally:
            await admin.close()
        await asyncio.sleep(0.3)  # the event loop reads the server's goodbye

        assert (await real_client.get("/v1/clients")).status_code == 200
        written = await real_client.post("/v1/test-transaction")
        assert written.status_code == 200, written.text


class TestVerifiedTokens:
    async def test_a_token_is_verified_once(
        self, settings: Settings, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        calls = 0
        decode = jwt.decode

        def counting(*args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            return decode(*args, **kwargs)

        monkeypatch.setattr(jwt, "decode", counting)
        token = mint_token(settings, f"cache-{uuid.uuid4().hex[:8]}", [Role.viewer])
        first = await verify_token(settings, token, None)
        second = await verify_token(settings, token, None)
        assert first == second
        assert first.roles == {Role.viewer}
        assert calls == 1

    async def test_a_cached_token_is_refused_once_expired(self, settings: Settings) -> None:
        strict = settings.model_copy(
            update={"auth": settings.auth.model_copy(update={"leeway_s": 0})}
        )
        token = mint_token(strict, "cache-expiry", [Role.admin], ttl_s=2)
        expires = jwt.decode(token, options={"verify_signature": False})["exp"]
        await verify_token(strict, token, None)
        await asyncio.sleep(max(0.0, expires - time.time()) + 0.1)
        with pytest.raises(Unauthorized, match="expired"):
            await verify_token(strict, token, None)

    async def test_other_settings_verify_again(self, settings: Settings) -> None:
        token = mint_token(settings, "cache-secret", [Role.admin])
        await verify_token(settings, token, None)
        rotated = settings.model_copy(
            update={
                "auth": settings.auth.model_copy(
                    update={"jwt_secret": SecretStr("another-secret-0123456789abcdef-xyz")}
                )
            }
        )
        with pytest.raises(Unauthorized):
            await verify_token(rotated, token, None)

    async def test_the_cache_is_bounded(self, settings: Settings) -> None:
        cache = VerifiedTokens(maxsize=2)
        tokens = [mint_token(settings, f"lru-{n}", [Role.admin]) for n in range(3)]
        principal = await verify_token(settings, tokens[0], None)
        for token in tokens:
            cache.put(token, auth._Verified(principal, settings, None, time.time() + 60))
        assert cache.get(tokens[0], settings) is None
        assert cache.get(tokens[1], settings) is not None
        assert cache.get(tokens[2], settings) is not None


class TestObservability:
    async def test_an_invalid_request_id_is_replaced(self, client: AsyncClient) -> None:
        response = await client.get("/v1/clients", headers={"X-Request-ID": "not an id"})
        assert response.status_code == 200
        generated = response.headers["X-Request-ID"]
        assert generated != "not an id"
        assert uuid.UUID(generated).hex == generated

    async def test_one_access_line_per_request(
        self, client: AsyncClient, caplog: pytest.LogCaptureFixture
    ) -> None:
        request_id = uuid.uuid4().hex
        with caplog.at_level(logging.INFO, logger="app.access"):
            response = await client.get("/v1/clients", headers={"X-Request-ID": request_id})
        assert response.status_code == 200
        lines = [r.msg for r in caplog.records if r.name == "app.access"]
        assert len(lines) == 1, lines
        line = lines[0]
        assert isinstance(line, dict)
        assert line["event"] == "request"
        assert line["method"] == "GET"
        assert line["path"] == "/v1/clients"
        assert line["status"] == 200
        assert line["request_id"] == request_id
        assert line["subject"] == "test-admin"
        assert isinstance(line["duration_ms"], float)

    async def test_anonymous_requests_are_logged_without_subject(
        self, anon: AsyncClient, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.INFO, logger="app.access"):
            response = await anon.get("/v1/clients")
        assert response.status_code == 401
        lines: list[Any] = [r.msg for r in caplog.records if r.name == "app.access"]
        assert [(line["status"], line["subject"]) for line in lines] == [(401, None)]
