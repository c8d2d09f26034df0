"""HTTP routes of ``/v1/sales`` and ``/v1/fx-rates``."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from app.core.auth import CurrentPrincipal, Principal, Role, Writer, require_roles
from app.core.errors import Conflict, error_responses
from app.core.http import IdempotencyKeyHeader, IfMatch, create_idempotently, etag
from app.core.session import SessionDep
from app.sales import repository, service
from app.sales.schemas import (
    FxRateCreate,
    FxRateFilters,
    FxRatePage,
    FxRateRead,
    SaleCreate,
    SaleFilters,
    SalePage,
    SaleRead,
    SaleUpdate,
)

router = APIRouter(tags=["sales"])
RatePublisher = Annotated[Principal, require_roles(Role.admin, Role.sales_manager, Role.service)]


@router.get("/v1/sales", response_model=SalePage, responses=error_responses(401, 422))
async def list_sales(
    session: SessionDep, principal: CurrentPrincipal, filters: Annotated[SaleFilters, Query()]
) -> SalePage:
    """List sales, oldest first, filtered and cursor-paginated."""
    rows, cursor = await repository.list_page(session, principal, filters)
    return SalePage(items=[repository.to_read(r) for r in rows], next_cursor=cursor)


@router.post(
    "/v1/sales",
    status_code=201,
    response_model=SaleRead,
    responses=error_responses(401, 403, 409, 422),
)
async def create_sale(
    request: Request,
    session: SessionDep,
    principal: Writer,
    body: SaleCreate,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Record a closed sale (negative amount for a credit note); credited by default to the
    manager responsible for the client at `closed_at`."""

    async def create() -> SaleRead:
        return repository.to_read(await service.create_sale(session, principal, body))

    return await create_idempotently(request, session, principal, idempotency_key, body, create)


@router.get("/v1/sales/{sale_id}", response_model=SaleRead, responses=error_responses(401, 404))
async def get_sale(
    sale_id: uuid.UUID, session: SessionDep, principal: CurrentPrincipal, response: Response
) -> SaleRead:
    """Read one sale."""
    row = await repository.get(session, principal, sale_id)
    response.headers["ETag"] = etag(row.version)
    return repository.to_read(row)


@router.patch(
    "/v1/sales/{sale_id}",
    response_model=SaleRead,
    responses=error_responses(401, 403, 404, 409, 412, 422),
)
async def update_sale(
    sale_id: uuid.UUID,
    body: SaleUpdate,
    session: SessionDep,
    principal: Writer,
    response: Response,
    if_match: IfMatch = None,
) -> SaleRead:
    """Correct a sale."""
    row = await service.update_sale(session, principal, sale_id, body, if_match)
    response.headers["ETag"] = etag(row.version)
    return repository.to_read(row)


@router.delete(
    "/v1/sales/{sale_id}", status_code=204, responses=error_responses(401, 403, 404, 412)
)
async def delete_sale(
    sale_id: uuid.UUID, session: SessionDep, principal: Writer, if_match: IfMatch = None
) -> Response:
    """Delete a sale entered in error (use a credit note for a real refund)."""
    await service.delete_sale(session, principal, sale_id, if_match)
    return Response(status_code=204)


@router.get("/v1/fx-rates", response_model=FxRatePage, responses=error_responses(401, 422))
async def list_fx_rates(
    session: SessionDep,
    principal: CurrentPrincipal,
    filters: Annotated[FxRateFilters, Query()],
) -> FxRatePage:
    """List published FX rates."""
    rows, cursor = await repository.rate_page(session, filters)
    return FxRatePage(items=[FxRateRead.model_validate(r) for r in rows], next_cursor=cursor)


@router.post(
    "/v1/fx-rates",
    status_code=201,
    response_model=FxRateRead,
    responses=error_responses(401, 403, 409, 422),
)
async def publish_fx_rate(
    request: Request,
    session: SessionDep,
    principal: RatePublisher,
    body: FxRateCreate,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Publish a rate (1 `base` = `rate` `quote`) valid from `valid_on`; 409 if that pair
    and date is already published."""

    async def create() -> FxRateRead:
        return FxRateRead.model_validate(await service.publish_rate(session, principal, body))

    return await create_idempotently(request, session, principal, idempotency_key, body, create)


@router.get(
    "/v1/fx-rates/{rate_id}", response_model=FxRateRead, responses=error_responses(401, 404)
)
async def get_fx_rate(
    rate_id: uuid.UUID, session: SessionDep, principal: CurrentPrincipal
) -> FxRateRead:
    """Read one published rate."""
    return FxRateRead.model_validate(await repository.get_rate(session, rate_id))


@router.patch("/v1/fx-rates/{rate_id}", status_code=409, responses=error_responses(401, 404, 409))
async def update_fx_rate(
    rate_id: uuid.UUID, session: SessionDep, principal: RatePublisher
) -> Response:
    """Always 409: a published rate is never edited, so past attainment cannot drift;
    publish a rate for a later date instead."""
    await repository.get_rate(session, rate_id)
    raise Conflict("Published FX rates are never changed; publish a rate for another date.")
