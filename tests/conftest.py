"""Test harness: real Postgres, schema from the migrations, one transaction per test.

The server is ``DATABASE_URL`` when set, else an embedded Postgres in
``.data/test-postgres``. Each test session gets its own fresh database (so parallel
runs never collide), migrated to head once. The ``client`` fixture runs every request
of a test inside one outer transaction that is rolled back at the end; the app's own
commits and rollbacks become savepoints. Tests that need real concurrency use
``live_client`` instead, whose writes are committed and truncated afterwards.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import asyncpg
import pytest
from alembic import command
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, async_sessionmaker

from app.config import Environment, Settings
from app.core.auth import Role, mint_token
from app.core.db import create_engine, create_sessionmaker
from app.core.health import alembic_config, migration_heads
from app.core.observability import configure_logging
from app.main import create_app
from app.models import Base

ROOT = Path(__file__).resolve().parents[1]
# Tables the migrations fill, and the append-only audit log (TRUNCATE is refused).
SEEDED_TABLES = frozenset(
    {"sla_policies", "rules", "rule_versions", "audit_events", "rule_write_epoch"}
)


def _server_url() -> tuple[str, object | None]:
    url = os.environ.get("DATABASE_URL")
    if url:
        return url, None
    from app.core.embedded_pg import EmbeddedPostgres

    server = EmbeddedPostgres(ROOT / ".data" / "test-postgres")
    return server.url, server


def plain_url(url: str) -> str:
    """``url`` for asyncpg itself (no SQLAlchemy driver name)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


T = TypeVar("T")


def in_thread(fn: Callable[[], T]) -> T:
    """Run ``fn`` in a worker thread: Alembic's env.py calls ``asyncio.run``, which must not
    touch the test session's event loop."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(fn).result()


async def _execute(url: str, sql: str) -> None:
    conn = await asyncpg.connect(plain_url(url))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A fresh database on the test server, migrated to head; dropped at the end."""
    server_url, server = _server_url()
    name = f"ams_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(plain_url(server_url))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    config = alembic_config()
    config.attributes["url"] = url
    command.upgrade(config, "head")
    try:
        yield url
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if server is not None:
            server.stop()  # type: ignore[attr-defined]


@pytest.fixture(scope="session", autouse=True)
def _json_logs() -> None:
    """Log as in production: one JSON line per event. (Unconfigured, structlog renders
    tracebacks with rich and every local variable, which costs seconds per 500.)"""
    configure_logging("INFO", json_output=True)


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, environment=Environment.test, log_json=False)


@pytest.fixture(scope="session")
async def engine(settings: Settings, database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings, database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """The test's connection, inside a transaction rolled back after the test."""
    async with engine.connect() as conn:
        outer = await conn.begin()
        try:
            yield conn
        finally:
            await outer.rollback()


@pytest.fixture(scope="session")
def shared_app(settings: Settings) -> FastAPI:
    """One app for the session: building it (and its first request) is the slow part."""
    return create_app(settings)


@pytest.fixture
def app(shared_app: FastAPI, engine: AsyncEngine, connection: AsyncConnection) -> FastAPI:
    """The app, its state reset for this test and bound to the test's transaction."""
    application = shared_app
    application.state.migration_heads = migration_heads()
    application.state.engine = engine
    application.state.sessionmaker = async_sessionmaker(
        bind=connection,
        join_transaction_mode="create_savepoint",
        expire_on_commit=False,
        autoflush=False,
    )
    return application


def make_token(settings: Settings, *roles: Role, subject: str | None = None) -> str:
    return mint_token(settings, subject or f"test-{uuid.uuid4().hex[:8]}", list(roles))


@pytest.fixture
def token(settings: Settings) -> str:
    return make_token(settings, Role.admin, subject="test-admin")


@pytest.fixture
async def client(app: FastAPI, token: str) -> AsyncIterator[AsyncClient]:
    """An admin HTTP client on the ASGI app, inside the test's transaction."""
    async with AsyncClient(
        transport=ASGITransport(app=app),
        base_url="http://test",
        headers={"Authorization": f"Bearer {token}"},
    ) as http:
        yield http


@pytest.fixture
async def anon(app: FastAPI) -> AsyncIterator[AsyncClient]:
    """An HTTP client without credentials."""
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as http:
        yield http


@pytest.fixture
async def anon_lenient(app: FastAPI) -> AsyncIterator[AsyncClient]:
    """Like ``anon``, but an unhandled exception comes back as the app's 500 response
    instead of being re-raised into the test (so a test can assert on that response)."""
    transport = ASGITransport(app=app, raise_app_exceptions=False)
    async with AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


@pytest.fixture
async def live_client(
    settings: Settings, engine: AsyncEngine, token: str
) -> AsyncIterator[AsyncClient]:
    """An admin client whose requests commit for real, on separate pooled connections,
    for concurrency tests. Every table is truncated afterwards."""
    application = create_app(settings)
    application.state.engine = engine
    application.state.sessionmaker = create_sessionmaker(engine)
    # (a separate app: its sessionmaker must not leak into the shared one)
    try:
        async with AsyncClient(
            transport=ASGITransport(app=application),
            base_url="http://test",
            headers={"Authorization": f"Bearer {token}"},
        ) as http:
            yield http
    finally:
        tables = ", ".join(
            t.name for t in Base.metadata.sorted_tables if t.name not in SEEDED_TABLES
        )
        async with engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {tables} CASCADE"))


@pytest.fixture
def fresh_url(database_url: str) -> Iterator[str]:
    """An empty database on the test server (not migrated), dropped afterwards."""
    name = f"ams_migr_{uuid.uuid4().hex[:10]}"
    in_thread(lambda: asyncio.run(_execute(database_url, f'CREATE DATABASE "{name}"')))
    url = make_url(database_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        in_thread(
            lambda: asyncio.run(
                _execute(database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            )
        )
