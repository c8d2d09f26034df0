"""``GET /v1/audit-events`` and ``GET /v1/clients/{id}/history``."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from app.audit import repository
from app.audit.schemas import AuditEventPage, AuditEventRead, AuditFilters
from app.clients import repository as clients_repository
from app.core.auth import CurrentPrincipal, Principal, Role, require_roles
from app.core.errors import error_responses
from app.core.pagination import PageQuery
from app.core.session import SessionDep

router = APIRouter(tags=["audit"])
Admin = Annotated[Principal, require_roles(Role.admin)]


@router.get(
    "/v1/audit-events", response_model=AuditEventPage, responses=error_responses(401, 403, 422)
)
async def list_audit_events(
    session: SessionDep, principal: Admin, filters: Annotated[AuditFilters, Query()]
) -> AuditEventPage:
    """The append-only audit log (admin), oldest first, filtered and cursor-paginated."""
    rows, cursor = await repository.events_page(session, filters)
    return AuditEventPage(
        items=[AuditEventRead.model_validate(r) for r in rows], next_cursor=cursor
    )


@router.get(
    "/v1/clients/{client_id}/history",
    response_model=AuditEventPage,
    responses=error_responses(401, 404, 422),
)
async def list_client_history(
    client_id: uuid.UUID,
    session: SessionDep,
    principal: CurrentPrincipal,
    page: Annotated[PageQuery, Query()],
) -> AuditEventPage:
    """Every recorded change of the client and of its records (assignments, interactions,
    complaints, sales, flags), oldest first."""
    await clients_repository.get(session, principal, client_id)
    rows, cursor = await repository.client_history_page(session, client_id, page)
    return AuditEventPage(
        items=[AuditEventRead.model_validate(r) for r in rows], next_cursor=cursor
    )
