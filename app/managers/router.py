"""HTTP routes of ``/v1/managers``."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from app.core.auth import CurrentPrincipal, Principal, Role, require_roles
from app.core.errors import error_responses
from app.core.http import IdempotencyKeyHeader, IfMatch, create_idempotently, etag
from app.core.session import SessionDep
from app.managers import repository, service
from app.managers.schemas import (
    ManagerCreate,
    ManagerFilters,
    ManagerPage,
    ManagerRead,
    ManagerUpdate,
)

router = APIRouter(prefix="/v1/managers", tags=["managers"])

StaffAdmin = Annotated[Principal, require_roles(Role.admin, Role.sales_manager)]


@router.get("", response_model=ManagerPage, responses=error_responses(401, 422))
async def list_managers(
    session: SessionDep,
    principal: CurrentPrincipal,
    filters: Annotated[ManagerFilters, Query()],
) -> ManagerPage:
    """List managers, oldest first, filtered and cursor-paginated."""
    rows, cursor = await repository.list_page(session, principal, filters)
    return ManagerPage(items=[service.to_read(r) for r in rows], next_cursor=cursor)


@router.post(
    "",
    status_code=201,
    response_model=ManagerRead,
    responses=error_responses(401, 403, 409, 422),
)
async def create_manager(
    request: Request,
    session: SessionDep,
    principal: StaffAdmin,
    body: ManagerCreate,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Create a manager (admin or sales_manager). Honours `Idempotency-Key`."""

    async def create() -> ManagerRead:
        row = await service.create_manager(session, principal, body)
        return ManagerRead.model_validate(row)

    return await create_idempotently(request, session, principal, idempotency_key, body, create)


@router.get("/{manager_id}", response_model=ManagerRead, responses=error_responses(401, 404))
async def get_manager(
    manager_id: uuid.UUID, session: SessionDep, principal: CurrentPrincipal, response: Response
) -> ManagerRead:
    """Read one manager; the `ETag` header carries its version."""
    row = await repository.get_row(session, principal, manager_id)
    response.headers["ETag"] = etag(row.version)
    return service.to_read(row)


@router.patch(
    "/{manager_id}",
    response_model=ManagerRead,
    responses=error_responses(401, 403, 404, 409, 412, 422),
)
async def update_manager(
    manager_id: uuid.UUID,
    body: ManagerUpdate,
    session: SessionDep,
    principal: StaffAdmin,
    response: Response,
    if_match: IfMatch = None,
) -> ManagerRead:
    """Change some fields of a manager; send `If-Match` to avoid lost updates."""
    row = await service.update_manager(session, principal, manager_id, body, if_match)
    response.headers["ETag"] = etag(row.version)
    return ManagerRead.model_validate(row)


@router.delete("/{manager_id}", status_code=204, responses=error_responses(401, 403, 404, 409, 412))
async def delete_manager(
    manager_id: uuid.UUID, session: SessionDep, principal: StaffAdmin, if_match: IfMatch = None
) -> Response:
    """Delete a manager who has no history (otherwise 409: deactivate instead)."""
    await service.delete_manager(session, principal, manager_id, if_match)
    return Response(status_code=204)
