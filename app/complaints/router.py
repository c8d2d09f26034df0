"""HTTP routes of ``/v1/complaints`` and ``/v1/sla-policies``."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from app.complaints import repository, service
from app.complaints.schemas import (
    ComplaintCreate,
    ComplaintFilters,
    ComplaintPage,
    ComplaintRead,
    ComplaintUpdate,
    SlaPolicyCreate,
    SlaPolicyPage,
    SlaPolicyRead,
    SlaPolicyUpdate,
    TransitionCreate,
    TransitionPage,
    TransitionRead,
    TransitionResult,
)
from app.core.auth import CurrentPrincipal, Principal, Role, Writer, require_roles
from app.core.errors import error_responses
from app.core.http import IdempotencyKeyHeader, IfMatch, create_idempotently, etag
from app.core.pagination import PageQuery
from app.core.session import SessionDep

router = APIRouter(tags=["complaints"])
Admin = Annotated[Principal, require_roles(Role.admin)]


@router.get("/v1/complaints", response_model=ComplaintPage, responses=error_responses(401, 422))
async def list_complaints(
    session: SessionDep,
    principal: CurrentPrincipal,
    filters: Annotated[ComplaintFilters, Query()],
) -> ComplaintPage:
    """List complaints with their SLA figures, oldest first; `breached=true` filters in SQL."""
    items, cursor = await repository.list_page(session, principal, filters)
    return ComplaintPage(items=items, next_cursor=cursor)


@router.post(
    "/v1/complaints",
    status_code=201,
    response_model=ComplaintRead,
    responses=error_responses(401, 403, 422),
)
async def create_complaint(
    request: Request,
    session: SessionDep,
    principal: Writer,
    body: ComplaintCreate,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Record a complaint (status `open`); the assignee defaults to the responsible manager."""

    async def create() -> ComplaintRead:
        complaint_id = await service.create_complaint(session, principal, body)
        return await repository.get_read(session, principal, complaint_id)

    return await create_idempotently(request, session, principal, idempotency_key, body, create)


@router.get(
    "/v1/complaints/{complaint_id}",
    response_model=ComplaintRead,
    responses=error_responses(401, 404),
)
async def get_complaint(
    complaint_id: uuid.UUID, session: SessionDep, principal: CurrentPrincipal, response: Response
) -> ComplaintRead:
    """Read one complaint with its SLA due times and breaches."""
    complaint = await repository.get_read(session, principal, complaint_id)
    response.headers["ETag"] = etag(complaint.version)
    return complaint


@router.patch(
    "/v1/complaints/{complaint_id}",
    response_model=ComplaintRead,
    responses=error_responses(401, 403, 404, 412, 422),
)
async def update_complaint(
    complaint_id: uuid.UUID,
    body: ComplaintUpdate,
    session: SessionDep,
    principal: Writer,
    response: Response,
    if_match: IfMatch = None,
) -> ComplaintRead:
    """Change a complaint's details; its status changes only through transitions."""
    await service.update_complaint(session, principal, complaint_id, body, if_match)
    complaint = await repository.get_read(session, principal, complaint_id)
    response.headers["ETag"] = etag(complaint.version)
    return complaint


@router.post(
    "/v1/complaints/{complaint_id}/transitions",
    status_code=201,
    response_model=TransitionResult,
    responses=error_responses(401, 403, 404, 409, 422),
)
async def create_complaint_transition(
    complaint_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    principal: Writer,
    body: TransitionCreate,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Move the complaint to status `to` (409 naming the allowed targets if illegal)."""

    async def create() -> TransitionResult:
        record = await service.transition(session, principal, complaint_id, body)
        complaint = await repository.get_read(session, principal, complaint_id)
        return TransitionResult(
            **TransitionRead.model_validate(record).model_dump(), complaint=complaint
        )

    return await create_idempotently(
        request, session, principal, idempotency_key, body, create, location=""
    )


@router.get(
    "/v1/complaints/{complaint_id}/history",
    response_model=TransitionPage,
    responses=error_responses(401, 404),
)
async def list_complaint_history(
    complaint_id: uuid.UUID,
    session: SessionDep,
    principal: CurrentPrincipal,
    page: Annotated[PageQuery, Query()],
) -> TransitionPage:
    """Every status change of the complaint, in order, with actor and time."""
    await repository.exists(session, principal, complaint_id)
    rows, cursor = await repository.history_page(session, complaint_id, page)
    return TransitionPage(
        items=[TransitionRead.model_validate(r) for r in rows], next_cursor=cursor
    )


@router.get("/v1/sla-policies", response_model=SlaPolicyPage, responses=error_responses(401))
async def list_sla_policies(
    session: SessionDep, principal: CurrentPrincipal, page: Annotated[PageQuery, Query()]
) -> SlaPolicyPage:
    """List SLA policies (targets in elapsed hours per severity, optionally per segment)."""
    rows, cursor = await repository.policy_page(session, page)
    return SlaPolicyPage(items=[SlaPolicyRead.model_validate(r) for r in rows], next_cursor=cursor)


@router.post(
    "/v1/sla-policies",
    status_code=201,
    response_model=SlaPolicyRead,
    responses=error_responses(401, 403, 409, 422),
)
async def create_sla_policy(
    request: Request,
    session: SessionDep,
    principal: Admin,
    body: SlaPolicyCreate,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Add a policy for one severity and client segment (admin)."""

    async def create() -> SlaPolicyRead:
        return SlaPolicyRead.model_validate(await service.create_policy(session, principal, body))

    return await create_idempotently(request, session, principal, idempotency_key, body, create)


@router.get(
    "/v1/sla-policies/{policy_id}",
    response_model=SlaPolicyRead,
    responses=error_responses(401, 404),
)
async def get_sla_policy(
    policy_id: uuid.UUID, session: SessionDep, principal: CurrentPrincipal, response: Response
) -> SlaPolicyRead:
    """Read one SLA policy."""
    row = await repository.get_policy(session, policy_id)
    response.headers["ETag"] = etag(row.version)
    return SlaPolicyRead.model_validate(row)


@router.patch(
    "/v1/sla-policies/{policy_id}",
    response_model=SlaPolicyRead,
    responses=error_responses(401, 403, 404, 412, 422),
)
async def update_sla_policy(
    policy_id: uuid.UUID,
    body: SlaPolicyUpdate,
    session: SessionDep,
    principal: Admin,
    response: Response,
    if_match: IfMatch = None,
) -> SlaPolicyRead:
    """Change a policy's targets (admin); due times of every complaint follow."""
    row = await service.update_policy(session, principal, policy_id, body, if_match)
    response.headers["ETag"] = etag(row.version)
    return SlaPolicyRead.model_validate(row)


@router.delete(
    "/v1/sla-policies/{policy_id}",
    status_code=204,
    responses=error_responses(401, 403, 404, 409, 412),
)
async def delete_sla_policy(
    policy_id: uuid.UUID, session: SessionDep, principal: Admin, if_match: IfMatch = None
) -> Response:
    """Delete a segment-specific policy (admin); a severity's default cannot be deleted."""
    await service.delete_policy(session, principal, policy_id, if_match)
    return Response(status_code=204)
