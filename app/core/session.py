"""One AsyncSession per request, committed before the response is sent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from asgi_correlation_id import correlation_id
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.audit import listener  # noqa: F401  (registers the flush listener)
from app.audit.listener import AuditContext
from app.core.db import autocommit_engine

# Methods whose handlers only read (every GET route is a read: no flush, no lock).
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _read_sessionmaker(request: Request) -> async_sessionmaker[AsyncSession] | None:
    """The app's sessionmaker on an autocommit engine (same pool), made once per
    sessionmaker; ``None`` when it is bound to a connection (tests: their transaction)."""
    state = request.app.state
    maker = state.sessionmaker
    cached = getattr(state, "read_sessionmaker", None)
    if cached is not None and cached[0] is maker:
        read: async_sessionmaker[AsyncSession] | None = cached[1]
        return read
    bind = maker.kw.get("bind")
    read = None
    if isinstance(bind, AsyncEngine):
        read = async_sessionmaker(
            class_=maker.class_, **{**maker.kw, "bind": autocommit_engine(bind)}
        )
    state.read_sessionmaker = (maker, read)
    return read


def _open(request: Request) -> tuple[AsyncSession, bool]:
    """The request's session, and whether it runs in autocommit mode."""
    if request.method in READ_METHODS:
        # A read needs no BEGIN/COMMIT round trips: each statement is its own snapshot,
        # as inside a READ COMMITTED transaction.
        read = _read_sessionmaker(request)
        if read is not None:
            return read(), True
    session: AsyncSession = request.app.state.sessionmaker()
    return session, False


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """Yield the request's session; commit after the endpoint, roll back on any error.

    Declared with ``scope="function"`` so the commit happens before the response
    starts: a failed commit becomes an error response, never a 200. Writes run in one
    transaction; GET/HEAD/OPTIONS run in autocommit mode (see :func:`_open`), where
    only unflushed changes (none expected) would need a commit.
    """
    session, autocommit = _open(request)
    async with session:
        session.info["audit"] = AuditContext(
            source="api",
            request_id=correlation_id.get(),
            resolve=lambda: getattr(request.state, "principal", None),
        )
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        else:
            if not autocommit or session.new or session.dirty or session.deleted:
                await session.commit()


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
