"""HTTP routes of ``/v1/interactions``."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from app.core.auth import CurrentPrincipal, Writer
from app.core.errors import error_responses
from app.core.http import IdempotencyKeyHeader, IfMatch, create_idempotently, etag
from app.core.session import SessionDep
from app.interactions import repository, service
from app.interactions.schemas import (
    InteractionCreate,
    InteractionFilters,
    InteractionPage,
    InteractionRead,
    InteractionUpdate,
)

router = APIRouter(prefix="/v1/interactions", tags=["interactions"])


@router.get("", response_model=InteractionPage, responses=error_responses(401, 422))
async def list_interactions(
    session: SessionDep,
    principal: CurrentPrincipal,
    filters: Annotated[InteractionFilters, Query()],
) -> InteractionPage:
    """List interactions, oldest first, filtered and cursor-paginated."""
    rows, cursor = await repository.list_page(session, principal, filters)
    return InteractionPage(
        items=[InteractionRead.model_validate(r) for r in rows], next_cursor=cursor
    )


@router.post(
    "",
    status_code=201,
    response_model=InteractionRead,
    responses=error_responses(401, 403, 409, 422),
)
async def create_interaction(
    request: Request,
    session: SessionDep,
    principal: Writer,
    body: InteractionCreate,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Log a contact with a client. Honours `Idempotency-Key`."""

    async def create() -> InteractionRead:
        row = await service.create_interaction(session, principal, body)
        return InteractionRead.model_validate(row)

    return await create_idempotently(request, session, principal, idempotency_key, body, create)


@router.get(
    "/{interaction_id}", response_model=InteractionRead, responses=error_responses(401, 404)
)
async def get_interaction(
    interaction_id: uuid.UUID,
    session: SessionDep,
    principal: CurrentPrincipal,
    response: Response,
) -> InteractionRead:
    """Read one interaction; the `ETag` header carries its version."""
    row = await repository.get(session, principal, interaction_id)
    response.headers["ETag"] = etag(row.version)
    return InteractionRead.model_validate(row)


@router.patch(
    "/{interaction_id}",
    response_model=InteractionRead,
    responses=error_responses(401, 403, 404, 409, 412, 422),
)
async def update_interaction(
    interaction_id: uuid.UUID,
    body: InteractionUpdate,
    session: SessionDep,
    principal: Writer,
    response: Response,
    if_match: IfMatch = None,
) -> InteractionRead:
    """Change an interaction, e.g. mark its next step done."""
    row = await service.update_interaction(session, principal, interaction_id, body, if_match)
    response.headers["ETag"] = etag(row.version)
    return InteractionRead.model_validate(row)


@router.delete("/{interaction_id}", status_code=204, responses=error_responses(401, 403, 404, 412))
async def delete_interaction(
    interaction_id: uuid.UUID, session: SessionDep, principal: Writer, if_match: IfMatch = None
) -> Response:
    """Delete an interaction logged in error."""
    await service.delete_interaction(session, principal, interaction_id, if_match)
    return Response(status_code=204)
