"""Alembic environment (async). The target metadata is the one registry in app.models.

A caller may pass an open connection in ``config.attributes["connection"]`` (tests, the
CLI); otherwise the URL comes from ``config.attributes["url"]`` or ``DATABASE_URL``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from app.config import async_database_url, get_settings
from app.models import Base

config = context.config
target_metadata = Base.metadata


def _include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    # Trigram expression indexes (`*_search`) are written by hand in the migrations.
    return not (type_ == "index" and (name or "").endswith("_search"))


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        include_object=_include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(url: str) -> None:
    engine = create_async_engine(async_database_url(url))
    async with engine.connect() as connection:
        await connection.run_sync(_configure)
        await connection.commit()
    await engine.dispose()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        return
    url = config.attributes.get("url") or get_settings().database_url
    if not url:
        raise RuntimeError("DATABASE_URL is not set")
    asyncio.run(_run_async(url))


if context.is_offline_mode():
    raise RuntimeError("Offline (--sql) migrations are not supported; run against a database.")
run_migrations_online()
