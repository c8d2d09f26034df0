"""HTTP routes of ``/v1/quotas``, attainment and the team roll-up."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from app.core.auth import CurrentPrincipal, Principal, Role, require_roles
from app.core.errors import error_responses
from app.core.http import IdempotencyKeyHeader, IfMatch, create_idempotently, etag
from app.core.periods import as_instant
from app.core.session import SessionDep
from app.managers import repository as managers_repository
from app.quotas import repository, service
from app.quotas.schemas import (
    Attainment,
    AttainmentQuery,
    QuotaCreate,
    QuotaFilters,
    QuotaPage,
    QuotaRead,
    QuotaUpdate,
    RollupQuery,
    TeamAttainment,
)

router = APIRouter(tags=["quotas"])
QuotaSetter = Annotated[Principal, require_roles(Role.admin, Role.sales_manager)]


@router.get("/v1/quotas", response_model=QuotaPage, responses=error_responses(401, 422))
async def list_quotas(
    session: SessionDep, principal: CurrentPrincipal, filters: Annotated[QuotaFilters, Query()]
) -> QuotaPage:
    """List quotas, oldest first, filtered and cursor-paginated."""
    rows, cursor = await repository.list_page(session, principal, filters)
    return QuotaPage(items=[service.to_read(r) for r in rows], next_cursor=cursor)


@router.post(
    "/v1/quotas",
    status_code=201,
    response_model=QuotaRead,
    responses=error_responses(401, 403, 409, 422),
)
async def create_quota(
    request: Request,
    session: SessionDep,
    principal: QuotaSetter,
    body: QuotaCreate,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Set a quota for a manager and period (admin or sales_manager); no two quotas of one
    manager and metric may overlap."""
    settings = request.app.state.settings

    async def create() -> QuotaRead:
        return service.to_read(await service.create_quota(session, principal, settings, body))

    return await create_idempotently(request, session, principal, idempotency_key, body, create)


@router.get("/v1/quotas/{quota_id}", response_model=QuotaRead, responses=error_responses(401, 404))
async def get_quota(
    quota_id: uuid.UUID, session: SessionDep, principal: CurrentPrincipal, response: Response
) -> QuotaRead:
    """Read one quota."""
    row = await repository.get(session, principal, quota_id)
    response.headers["ETag"] = etag(row.version)
    return service.to_read(row)


@router.patch(
    "/v1/quotas/{quota_id}",
    response_model=QuotaRead,
    responses=error_responses(401, 403, 404, 412, 422),
)
async def update_quota(
    quota_id: uuid.UUID,
    body: QuotaUpdate,
    session: SessionDep,
    principal: QuotaSetter,
    response: Response,
    if_match: IfMatch = None,
) -> QuotaRead:
    """Change a quota's target (admin or sales_manager)."""
    row = await service.update_quota(session, principal, quota_id, body, if_match)
    response.headers["ETag"] = etag(row.version)
    return service.to_read(row)


@router.delete(
    "/v1/quotas/{quota_id}", status_code=204, responses=error_responses(401, 403, 404, 409, 412)
)
async def delete_quota(
    quota_id: uuid.UUID, session: SessionDep, principal: QuotaSetter, if_match: IfMatch = None
) -> Response:
    """Delete a quota set in error."""
    await service.delete_quota(session, principal, quota_id, if_match)
    return Response(status_code=204)


@router.get(
    "/v1/quotas/{quota_id}/attainment",
    response_model=Attainment,
    responses=error_responses(401, 404, 422),
)
async def get_quota_attainment(
    quota_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
    query: Annotated[AttainmentQuery, Query()],
) -> Attainment:
    """Achieved vs target at `as_of`, pace, projection, status and a page of the records
    that counted (sales converted with the rate of their local date)."""
    settings = request.app.state.settings
    as_of = as_instant(query.as_of, settings.org.time_zone)
    return await service.attainment(session, principal, settings, quota_id, as_of, query)


@router.get(
    "/v1/managers/{manager_id}/attainment",
    response_model=TeamAttainment,
    responses=error_responses(401, 404, 422),
)
async def get_team_attainment(
    manager_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
    query: Annotated[RollupQuery, Query()],
) -> TeamAttainment:
    """Roll-up per metric of the quotas of the manager and everyone reporting to them
    (recursively) for a fiscal period."""
    await managers_repository.check_visible(session, principal, manager_id)
    settings = request.app.state.settings
    as_of = as_instant(query.as_of, settings.org.time_zone)
    currency = query.currency or settings.org.currency
    return await service.team_attainment(
        session, settings, manager_id, query.period, as_of, currency, principal
    )
