"""The database goes away and comes back (issue 9, item 3): requests during the outage
get a prompt 503 problem, readiness says not ready, and the service recovers without a
restart. Runs on a private embedded Postgres so the shared test server is untouched."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from alembic import command
from httpx import ASGITransport, AsyncClient

from app.config import DatabaseSettings, Environment, Settings
from app.core.auth import Role
from app.core.db import create_engine, create_sessionmaker
from app.core.embedded_pg import EmbeddedPostgres
from app.core.health import alembic_config
from app.main import create_app
from tests.conftest import make_token


@pytest.fixture
async def outage_client(tmp_path: Path) -> AsyncIterator[tuple[AsyncClient, Path]]:
    data = tmp_path / "pg"
    server = await asyncio.to_thread(EmbeddedPostgres, data)
    url = await asyncio.to_thread(server.create_database, "ams")
    config = alembic_config()
    config.attributes["url"] = url
    await asyncio.to_thread(command.upgrade, config, "head")
    settings = Settings(
        database_url=url,
        environment=Environment.test,
        log_json=False,
        db=DatabaseSettings(connect_timeout_s=2, pool_timeout_s=2, pool_size=2),
    )
    app = create_app(settings)
    app.state.engine = create_engine(settings, url)
    app.state.sessionmaker = create_sessionmaker(app.state.engine)
    token = make_token(settings, Role.admin)
    try:
        async with AsyncClient(
            transport=ASGITransport(app=app),
            base_url="http://test",
            headers={"Authorization": f"Bearer {token}"},
        ) as http:
            yield http, data
    finally:
        await app.state.engine.dispose()
        await asyncio.to_thread(EmbeddedPostgres(data).stop)


async def test_outage_is_503_and_recovers(outage_client: tuple[AsyncClient, Path]) -> None:
    http, data = outage_client
    assert (await http.get("/v1/clients")).status_code == 200
    server = await asyncio.to_thread(EmbeddedPostgres, data)
    await asyncio.to_thread(server.stop)

    started = time.monotonic()
    down = await http.get("/v1/clients")
    assert down.status_code == 503, down.text
    assert down.headers["content-type"].startswith("application/problem+json")
    assert time.monotonic() - started < 10
    ready = await http.get("/health/ready")
    assert ready.status_code == 503

    await asyncio.to_thread(EmbeddedPostgres, data)  # starts it again on the same data
    up = await http.get("/v1/clients")
    assert up.status_code == 200, up.text
    assert (await http.get("/health/ready")).status_code == 200
