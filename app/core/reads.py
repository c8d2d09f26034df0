"""Core (not ORM) reads of one table within the caller's scope, for endpoints that only
serialise rows: no identity map, instance state or attribute instrumentation per row,
and the statements for unrestricted callers are built once (SQLAlchemy caches their
compiled form)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import FromClause, Row, Select, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.auth import Principal
from app.core.errors import NotFound

Scope = Callable[[Principal], Select[Any] | None]


class ScopedRows:
    """Reads of every column of ``table`` (keyed by its ``id``) restricted to the ids
    ``scope`` gives for a caller (``None``: all); ``noun`` names a record in 404s."""

    def __init__(self, table: FromClause, scope: Scope, noun: str) -> None:
        self.table, self.scope, self.noun = table, scope, noun
        self.columns = tuple(table.c)
        self.keys = tuple(c.key for c in self.columns)  # a row's value names, in order
        self._all: Select[Any] = select(*self.columns)
        self._one: Select[Any] = self._all.where(table.c.id == bindparam("row_id"))
        self._id: Select[Any] = select(table.c.id).where(table.c.id == bindparam("row_id"))

    def _scoped(self, stmt: Select[Any], principal: Principal) -> Select[Any]:
        scope = self.scope(principal)
        return stmt if scope is None else stmt.where(self.table.c.id.in_(scope))

    def visible(self, principal: Principal) -> Select[Any]:
        """Every visible row, as a statement to filter and page further."""
        return self._scoped(self._all, principal)

    async def get(self, session: AsyncSession, principal: Principal, row_id: uuid.UUID) -> Row[Any]:
        """One row (one statement), or :class:`NotFound` when absent or out of scope."""
        stmt = self._scoped(self._one, principal)
        row: Row[Any] | None = (await session.execute(stmt, {"row_id": row_id})).one_or_none()
        if row is None:
            raise NotFound(f"{self.noun} {row_id} was not found.")
        return row

    async def check(self, session: AsyncSession, principal: Principal, row_id: uuid.UUID) -> None:
        """:class:`NotFound` unless the row exists and is in scope (an index lookup of the
        id; nothing is loaded)."""
        stmt = self._scoped(self._id, principal)
        if (await session.execute(stmt, {"row_id": row_id})).first() is None:
            raise NotFound(f"{self.noun} {row_id} was not found.")
