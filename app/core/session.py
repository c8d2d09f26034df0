"""One AsyncSession per request, committed before the response is sent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from asgi_correlation_id import correlation_id
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit import listener  # noqa: F401  (registers the flush listener)
from app.audit.listener import AuditContext


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """Yield the request's session; commit after the endpoint, roll back on any error.

    Declared with ``scope="function"`` so the commit happens before the response
    starts: a failed commit becomes an error response, never a 200.
    """
    async with request.app.state.sessionmaker() as session:
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
            await session.commit()


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
