"""HTTP routes of ``/v1/clients``."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from app.clients import repository, service
from app.clients.schemas import (
    ClientCreate,
    ClientFilters,
    ClientPage,
    ClientRead,
    ClientUpdate,
)
from app.core.auth import CurrentPrincipal, Lead, Writer
from app.core.errors import error_responses
from app.core.http import IdempotencyKeyHeader, IfMatch, create_idempotently, etag
from app.core.session import SessionDep

router = APIRouter(prefix="/v1/clients", tags=["clients"])


@router.get("", response_model=ClientPage, responses=error_responses(401, 422))
async def list_clients(
    session: SessionDep,
    principal: CurrentPrincipal,
    filters: Annotated[ClientFilters, Query()],
) -> ClientPage:
    """List client accounts, oldest first, filtered and cursor-paginated."""
    rows, cursor = await repository.list_page(session, principal, filters)
    return ClientPage(items=[service.to_read(r) for r in rows], next_cursor=cursor)


@router.post(
    "", status_code=201, response_model=ClientRead, responses=error_responses(401, 403, 409, 422)
)
async def create_client(
    request: Request,
    session: SessionDep,
    principal: Lead,
    body: ClientCreate,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Create a client account (admin or sales_manager). Honours `Idempotency-Key`."""

    async def create() -> ClientRead:
        return ClientRead.model_validate(await service.create_client(session, principal, body))

    return await create_idempotently(request, session, principal, idempotency_key, body, create)


@router.get("/{client_id}", response_model=ClientRead, responses=error_responses(401, 404))
async def get_client(
    client_id: uuid.UUID, session: SessionDep, principal: CurrentPrincipal, response: Response
) -> ClientRead:
    """Read one client account; the `ETag` header carries its version."""
    row = await repository.get_row(session, principal, client_id)
    response.headers["ETag"] = etag(row.version)
    return service.to_read(row)


@router.patch(
    "/{client_id}",
    response_model=ClientRead,
    responses=error_responses(401, 403, 404, 409, 412, 422),
)
async def update_client(
    client_id: uuid.UUID,
    body: ClientUpdate,
    session: SessionDep,
    principal: Writer,
    response: Response,
    if_match: IfMatch = None,
) -> ClientRead:
    """Change some fields of a client; send `If-Match` to avoid lost updates."""
    row = await service.update_client(session, principal, client_id, body, if_match)
    response.headers["ETag"] = etag(row.version)
    return ClientRead.model_validate(row)


@router.post(
    "/{client_id}/archive",
    response_model=ClientRead,
    responses=error_responses(401, 403, 404, 412),
)
async def archive_client(
    client_id: uuid.UUID,
    session: SessionDep,
    principal: Writer,
    response: Response,
    if_match: IfMatch = None,
) -> ClientRead:
    """Archive a client: it keeps its history but leaves default lists."""
    row = await service.set_archived(session, principal, client_id, True, if_match)
    response.headers["ETag"] = etag(row.version)
    return ClientRead.model_validate(row)


@router.post(
    "/{client_id}/restore",
    response_model=ClientRead,
    responses=error_responses(401, 403, 404, 412),
)
async def restore_client(
    client_id: uuid.UUID,
    session: SessionDep,
    principal: Writer,
    response: Response,
    if_match: IfMatch = None,
) -> ClientRead:
    """Bring an archived client back."""
    row = await service.set_archived(session, principal, client_id, False, if_match)
    response.headers["ETag"] = etag(row.version)
    return ClientRead.model_validate(row)


@router.delete("/{client_id}", status_code=204, responses=error_responses(401, 403, 404, 409, 412))
async def delete_client(
    client_id: uuid.UUID, session: SessionDep, principal: Writer, if_match: IfMatch = None
) -> Response:
    """Delete a client without history (otherwise 409: archive it instead)."""
    await service.delete_client(session, principal, client_id, if_match)
    return Response(status_code=204)
