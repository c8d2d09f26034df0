"""Small helpers every resource's service uses for writes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.auth import Principal
from app.core.errors import Conflict
from app.core.http import check_if_match

M = TypeVar("M")


def new_row(model: Callable[..., M], values: dict[str, Any], principal: Principal) -> M:
    """A new row with its audit fields set from the caller."""
    return model(**values, created_by=principal.subject, updated_by=principal.subject)


async def apply_changes(
    session: AsyncSession,
    row: Any,
    changes: dict[str, Any],
    principal: Principal,
    if_match: str | None,
) -> None:
    """Apply a PATCH (already ``exclude_unset``) after checking ``If-Match``; flush so
    constraint violations and concurrent updates surface inside the request.

    Raises:
        PreconditionFailed: stale ``If-Match``, or another request updated the row first.
    """
    check_if_match(if_match, row.version)
    for field, value in changes.items():
        setattr(row, field, value)
    if changes:
        row.updated_by = principal.subject
        await session.flush()
        await session.refresh(row)


async def delete_row(session: AsyncSession, row: Any, if_match: str | None, what: str) -> None:
    """Delete ``row``; a row other records still refer to is a 409.

    Raises:
        PreconditionFailed: stale ``If-Match``.
        Conflict: the row has history (other records reference it).
    """
    check_if_match(if_match, row.version)
    await session.delete(row)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:
        raise Conflict(
            f"This {what} has related records and cannot be deleted; "
            + ("archive it instead." if what == "client" else "deactivate it instead.")
        ) from exc


def changes_of(update: BaseModel) -> dict[str, Any]:
    """The fields a PATCH body actually sets (``exclude_unset``)."""
    return update.model_dump(exclude_unset=True)
