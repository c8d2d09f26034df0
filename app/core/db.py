"""Declarative base, naming convention and the columns every resource shares."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, MetaData, String, event, func
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

from app.config import Settings, async_database_url

# Predictable constraint names: IntegrityErrors are mapped by these names.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class ResourceMixin:
    """UUID id, audit columns and the optimistic-concurrency ``version``.

    ``version`` starts at 1 and is bumped by SQLAlchemy on every UPDATE, whose WHERE
    clause includes the old value, so a concurrent writer gets ``StaleDataError``.
    """

    __audited__ = True

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now(), nullable=False
    )
    created_by: Mapped[str | None] = mapped_column(String(200))
    updated_by: Mapped[str | None] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(nullable=False)

    @declared_attr.directive
    def __mapper_args__(cls) -> dict[str, Any]:
        return {"version_id_col": cls.version}


def create_engine(settings: Settings, url: str) -> AsyncEngine:
    """Engine with the pool size, recycle age, connect and statement timeouts from settings.

    No ``pool_pre_ping``: it costs three round trips (BEGIN, ``;``, ROLLBACK) per checkout.
    Instead a checkout hands out a fresh connection when the pooled one is already known
    to be closed (the server went away while it was idle: no round trip needed to see it),
    connections are recycled after ``DB__POOL_RECYCLE_S``, and a connection that breaks
    mid-request invalidates the pool, so that request is a 503 and the next ones reconnect.
    """
    # jit off: the planner's estimates for the set-based roll-ups trip the JIT thresholds
    # and compiling costs seconds for statements that run in milliseconds.
    server_settings = {"application_name": "ams", "jit": "off"}
    if settings.db.statement_timeout_ms:
        server_settings["statement_timeout"] = str(settings.db.statement_timeout_ms)
    engine = create_async_engine(
        async_database_url(url),
        pool_size=settings.db.pool_size,
        max_overflow=settings.db.max_overflow,
        pool_timeout=settings.db.pool_timeout_s,
        pool_recycle=settings.db.pool_recycle_s,
        connect_args={
            "timeout": settings.db.connect_timeout_s,
            "server_settings": server_settings,
        },
    )
    event.listen(engine.sync_engine.pool, "checkout", _refuse_closed_connection)
    return engine


def _refuse_closed_connection(
    dbapi_connection: Any, record: ConnectionPoolEntry, proxy: PoolProxiedConnection
) -> None:
    """Pool ``checkout`` hook: a connection whose socket the server has closed is swapped
    for a new one (the pool retries on ``DisconnectionError``)."""
    raw = getattr(dbapi_connection, "_connection", None)  # asyncpg's Connection
    if raw is not None and raw.is_closed():
        raise DisconnectionError("the pooled connection was closed by the server")


def autocommit_engine(engine: AsyncEngine) -> AsyncEngine:
    """``engine`` with ``AUTOCOMMIT`` isolation, on the same pool (build it once).

    For read-only requests: each SELECT runs on its own snapshot like it would inside a
    READ COMMITTED transaction, but without the BEGIN and COMMIT round trips.
    """
    return engine.execution_options(isolation_level="AUTOCOMMIT")


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[Any]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
