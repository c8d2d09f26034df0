"""Declarative base, naming convention and the columns every resource shares."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, MetaData, String, func
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column

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
    """Engine with the pool size, connect and statement timeouts from settings."""
    # jit off: the planner's estimates for the set-based roll-ups trip the JIT thresholds
    # and compiling costs seconds for statements that run in milliseconds.
    server_settings = {"application_name": "ams", "jit": "off"}
    if settings.db.statement_timeout_ms:
        server_settings["statement_timeout"] = str(settings.db.statement_timeout_ms)
    return create_async_engine(
        async_database_url(url),
        pool_size=settings.db.pool_size,
        max_overflow=settings.db.max_overflow,
        pool_timeout=settings.db.pool_timeout_s,
        pool_pre_ping=True,
        connect_args={
            "timeout": settings.db.connect_timeout_s,
            "server_settings": server_settings,
        },
    )


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[Any]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
