"""HTTP routes of assignments, handovers, absences, responsibility and books of business."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from app.assignments import repository, service
from app.assignments.schemas import (
    AbsenceCreate,
    AbsenceRead,
    AssignmentCreate,
    AssignmentFilters,
    AssignmentPage,
    AssignmentRead,
    AssignmentUpdate,
    BookEntry,
    BookPage,
    BookQuery,
    HandoverRead,
    HandoverRequest,
    Responsibility,
    ResponsibleQuery,
)
from app.clients import repository as clients_repository
from app.clients.schemas import ClientRead
from app.core.auth import CurrentPrincipal, Lead
from app.core.errors import NotFound, error_responses
from app.core.http import IdempotencyKeyHeader, IfMatch, create_idempotently, etag
from app.core.periods import as_instant
from app.core.session import SessionDep
from app.managers import repository as managers_repository

router = APIRouter(tags=["assignments"])


@router.get("/v1/assignments", response_model=AssignmentPage, responses=error_responses(401, 422))
async def list_assignments(
    session: SessionDep,
    principal: CurrentPrincipal,
    filters: Annotated[AssignmentFilters, Query()],
) -> AssignmentPage:
    """List assignments, oldest first, filtered and cursor-paginated."""
    rows, cursor = await repository.list_page(session, principal, filters)
    return AssignmentPage(
        items=[AssignmentRead.model_validate(r) for r in rows], next_cursor=cursor
    )


@router.post(
    "/v1/assignments",
    status_code=201,
    response_model=AssignmentRead,
    responses=error_responses(401, 403, 409, 422),
)
async def create_assignment(
    request: Request,
    session: SessionDep,
    principal: Lead,
    body: AssignmentCreate,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Make a manager primary, secondary or cover for a client over `[starts_at, ends_at)`."""

    async def create() -> AssignmentRead:
        row = await service.create_assignment(session, principal, body)
        return AssignmentRead.model_validate(row)

    return await create_idempotently(request, session, principal, idempotency_key, body, create)


@router.get(
    "/v1/assignments/{assignment_id}",
    response_model=AssignmentRead,
    responses=error_responses(401, 404),
)
async def get_assignment(
    assignment_id: uuid.UUID, session: SessionDep, principal: CurrentPrincipal, response: Response
) -> AssignmentRead:
    """Read one assignment; the `ETag` header carries its version."""
    row = await repository.get(session, principal, assignment_id)
    response.headers["ETag"] = etag(row.version)
    return AssignmentRead.model_validate(row)


@router.patch(
    "/v1/assignments/{assignment_id}",
    response_model=AssignmentRead,
    responses=error_responses(401, 403, 404, 409, 412, 422),
)
async def update_assignment(
    assignment_id: uuid.UUID,
    body: AssignmentUpdate,
    session: SessionDep,
    principal: Lead,
    response: Response,
    if_match: IfMatch = None,
) -> AssignmentRead:
    """End an assignment (set `ends_at`, not in the past) or change its reason."""
    row = await service.update_assignment(session, principal, assignment_id, body, if_match)
    response.headers["ETag"] = etag(row.version)
    return AssignmentRead.model_validate(row)


@router.delete(
    "/v1/assignments/{assignment_id}",
    status_code=204,
    responses=error_responses(401, 403, 404, 409, 412),
)
async def delete_assignment(
    assignment_id: uuid.UUID, session: SessionDep, principal: Lead, if_match: IfMatch = None
) -> Response:
    """Delete an assignment that has not started yet (otherwise 409: end it)."""
    await service.delete_assignment(session, principal, assignment_id, if_match)
    return Response(status_code=204)


@router.post(
    "/v1/clients/{client_id}/handover",
    status_code=201,
    response_model=HandoverRead,
    responses=error_responses(401, 403, 404, 409, 422),
)
async def hand_over_client(
    client_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    principal: Lead,
    body: HandoverRequest,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """End the client's primary assignment at `at` and start the new manager's at the same
    instant, atomically. A concurrent handover of the same client gets 409."""

    async def create() -> HandoverRead:
        ended, started, at = await service.handover(session, principal, client_id, body)
        return HandoverRead(
            client_id=client_id,
            at=at,
            ended=AssignmentRead.model_validate(ended) if ended else None,
            started=AssignmentRead.model_validate(started),
            id=started.id,
            version=started.version,
        )

    return await create_idempotently(
        request, session, principal, idempotency_key, body, create, location="/v1/assignments"
    )


@router.get(
    "/v1/clients/{client_id}/responsible",
    response_model=Responsibility,
    responses=error_responses(401, 404),
)
async def get_responsible_manager(
    client_id: uuid.UUID,
    session: SessionDep,
    principal: CurrentPrincipal,
    query: Annotated[ResponsibleQuery, Query()],
) -> Responsibility:
    """Who is responsible for the client at `at` (default now): the active cover, else
    the primary. 404 `unassigned` when neither is active."""
    await clients_repository.get(session, principal, client_id)
    at = as_instant(query.at, "UTC")
    row = await repository.responsible(session, client_id, at)
    if row is None:
        raise NotFound(
            f"Client {client_id} has no primary or cover manager at {at.isoformat()}.",
            extra={"reason": "unassigned"},
        )
    return Responsibility(
        client_id=client_id,
        at=at,
        manager_id=row.manager_id,
        role=row.role,
        assignment=AssignmentRead.model_validate(row),
    )


@router.get(
    "/v1/managers/{manager_id}/book",
    response_model=BookPage,
    responses=error_responses(401, 404, 422),
)
async def get_book_of_business(
    manager_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
    query: Annotated[BookQuery, Query()],
) -> BookPage:
    """The clients the manager is responsible for at `as_of` (an instant, or a date meaning
    00:00 of that day in the organisation's time zone; default now), each with the role."""
    await managers_repository.get(session, principal, manager_id)
    at = as_instant(query.as_of, request.app.state.settings.org.time_zone)
    rows, cursor = await repository.book_page(session, manager_id, at, query, principal)
    return BookPage(
        items=[
            BookEntry(
                role=a.role,
                assignment_id=a.id,
                starts_at=a.starts_at,
                ends_at=a.ends_at,
                client=ClientRead.model_validate(c),
            )
            for a, c in rows
        ],
        next_cursor=cursor,
    )


@router.post(
    "/v1/managers/{manager_id}/absences",
    status_code=201,
    response_model=AbsenceRead,
    responses=error_responses(401, 403, 404, 409, 422),
)
async def create_absence(
    manager_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    principal: Lead,
    body: AbsenceCreate,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Record an absence; the cover manager covers every client the absent manager is
    primary for during the window (all or nothing). Covers end with the window."""

    async def create() -> AbsenceRead:
        absence, covers = await service.create_absence(session, principal, manager_id, body)
        return AbsenceRead.model_validate(
            {
                **{k: getattr(absence, k) for k in AbsenceRead.model_fields if k != "assignments"},
                "assignments": [AssignmentRead.model_validate(c) for c in covers],
            }
        )

    return await create_idempotently(request, session, principal, idempotency_key, body, create)
