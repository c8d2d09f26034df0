"""HTTP routes of rules, rule runs, flags and client health."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from asgi_correlation_id import correlation_id
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from app.clients import repository as clients_repository
from app.core.auth import CurrentPrincipal, Principal, Role, Writer, require_roles
from app.core.errors import error_responses
from app.core.http import IdempotencyKeyHeader, IfMatch, create_idempotently, etag
from app.core.pagination import PageQuery
from app.core.session import SessionDep
from app.rules import engine, repository, service
from app.rules.schemas import (
    ClientHealth,
    FlagEventPage,
    FlagEventRead,
    FlagFilters,
    FlagPage,
    FlagRead,
    FlagTransitionCreate,
    HealthPointRead,
    RulePage,
    RuleRead,
    RuleRunCreate,
    RuleRunPage,
    RuleRunRead,
    RuleUpdate,
    RuleVersionPage,
    RuleVersionRead,
    SimulatedFlag,
    SimulationRequest,
    SimulationResult,
)

router = APIRouter(tags=["rules"])
Admin = Annotated[Principal, require_roles(Role.admin)]
Runner = Annotated[Principal, require_roles(Role.admin, Role.service)]


@router.get("/v1/rules", response_model=RulePage, responses=error_responses(401))
async def list_rules(session: SessionDep, principal: CurrentPrincipal) -> RulePage:
    """The rule catalogue with each rule's current configuration and parameter schema."""
    rows = await repository.all_rules(session)
    return RulePage(items=[service.rule_read(r) for r in rows], next_cursor=None)


@router.get("/v1/rules/{key}", response_model=RuleRead, responses=error_responses(401, 404))
async def get_rule(
    key: str, session: SessionDep, principal: CurrentPrincipal, response: Response
) -> RuleRead:
    """One rule; the `ETag` header carries its version."""
    row = await repository.get_rule(session, key)
    response.headers["ETag"] = etag(row.version)
    return service.rule_read(row)


@router.patch(
    "/v1/rules/{key}",
    response_model=RuleRead,
    responses=error_responses(401, 403, 404, 412, 422),
)
async def update_rule(
    key: str,
    body: RuleUpdate,
    session: SessionDep,
    principal: Admin,
    response: Response,
    if_match: IfMatch = None,
) -> RuleRead:
    """Switch a rule on or off, change its severity or parameters (admin); a new version."""
    row = await service.update_rule(session, principal, key, body, if_match)
    response.headers["ETag"] = etag(row.version)
    return service.rule_read(row)


@router.get(
    "/v1/rules/{key}/versions",
    response_model=RuleVersionPage,
    responses=error_responses(401, 404),
)
async def list_rule_versions(
    key: str,
    session: SessionDep,
    principal: CurrentPrincipal,
    page: Annotated[PageQuery, Query()],
) -> RuleVersionPage:
    """Every configuration the rule has had, newest first."""
    await repository.get_rule(session, key)
    rows, cursor = await repository.versions_page(session, key, page)
    return RuleVersionPage(
        items=[RuleVersionRead.model_validate(r) for r in rows], next_cursor=cursor
    )


@router.post(
    "/v1/rule-runs",
    status_code=201,
    response_model=RuleRunRead,
    responses=error_responses(401, 403, 409, 422),
)
async def create_rule_run(
    request: Request,
    session: SessionDep,
    principal: Runner,
    body: RuleRunCreate,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Evaluate every enabled rule now (or at `as_of`); 409 while another run is going."""
    settings = request.app.state.settings

    async def create() -> RuleRunRead:
        run = await engine.run_rules(
            session,
            as_of=body.as_of,
            time_zone=settings.org.time_zone,
            trigger="api",
            actor=principal.subject,
            wait=False,
            statement_timeout_ms=settings.rules.statement_timeout_ms,
            roles=sorted(r.value for r in principal.roles),
            request_id=correlation_id.get(),
        )
        return RuleRunRead.model_validate(run)

    return await create_idempotently(request, session, principal, idempotency_key, body, create)


@router.get("/v1/rule-runs", response_model=RuleRunPage, responses=error_responses(401))
async def list_rule_runs(
    session: SessionDep, principal: CurrentPrincipal, page: Annotated[PageQuery, Query()]
) -> RuleRunPage:
    """Rule runs, newest first."""
    rows, cursor = await repository.runs_page(session, page)
    return RuleRunPage(items=[RuleRunRead.model_validate(r) for r in rows], next_cursor=cursor)


@router.get(
    "/v1/rule-runs/{run_id}", response_model=RuleRunRead, responses=error_responses(401, 404)
)
async def get_rule_run(
    run_id: uuid.UUID, session: SessionDep, principal: CurrentPrincipal
) -> RuleRunRead:
    """One rule run with its counts per rule."""
    return RuleRunRead.model_validate(await repository.get_run(session, run_id))


@router.post(
    "/v1/rule-runs/simulate",
    response_model=SimulationResult,
    responses=error_responses(401, 403, 422),
)
async def simulate_rule_run(
    request: Request, session: SessionDep, principal: Admin, body: SimulationRequest
) -> SimulationResult:
    """What a run with these parameter overrides (and `as_of`) would flag; writes nothing."""
    settings = request.app.state.settings
    result = await engine.simulate(
        session,
        as_of=body.as_of,
        time_zone=settings.org.time_zone,
        overrides={k: v.model_dump(exclude_none=True) for k, v in body.overrides.items()},
        limit=body.limit,
        statement_timeout_ms=settings.rules.statement_timeout_ms,
    )
    return SimulationResult(
        as_of=result.as_of,
        per_rule=result.per_rule,
        flags=[SimulatedFlag.model_validate(m, from_attributes=True) for m in result.matches],
    )


@router.get("/v1/flags", response_model=FlagPage, responses=error_responses(401, 422))
async def list_flags(
    session: SessionDep, principal: CurrentPrincipal, filters: Annotated[FlagFilters, Query()]
) -> FlagPage:
    """List flags, oldest first, filtered and cursor-paginated."""
    rows, cursor = await repository.flags_page(session, principal, filters, datetime.now(UTC))
    return FlagPage(items=[FlagRead.model_validate(r) for r in rows], next_cursor=cursor)


@router.get("/v1/flags/{flag_id}", response_model=FlagRead, responses=error_responses(401, 404))
async def get_flag(
    flag_id: uuid.UUID, session: SessionDep, principal: CurrentPrincipal, response: Response
) -> FlagRead:
    """One flag with its evidence."""
    row = await repository.get_flag(session, principal, flag_id)
    response.headers["ETag"] = etag(row.version)
    return FlagRead.model_validate(row)


@router.post(
    "/v1/flags/{flag_id}/transitions",
    status_code=201,
    response_model=FlagRead,
    responses=error_responses(401, 403, 404, 409, 422),
)
async def create_flag_transition(
    flag_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    principal: Writer,
    body: FlagTransitionCreate,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Acknowledge, snooze (`until`), wake (`open`) or resolve a flag."""

    async def create() -> FlagRead:
        row = await service.transition_flag(session, principal, flag_id, body)
        return FlagRead.model_validate(row)

    return await create_idempotently(
        request, session, principal, idempotency_key, body, create, location=""
    )


@router.get(
    "/v1/flags/{flag_id}/history",
    response_model=FlagEventPage,
    responses=error_responses(401, 404),
)
async def list_flag_history(
    flag_id: uuid.UUID,
    session: SessionDep,
    principal: CurrentPrincipal,
    page: Annotated[PageQuery, Query()],
) -> FlagEventPage:
    """Every step of the flag's life, in order, with actor, time and note: first its
    raise (the run that raised it; the step's id is the flag's id), then each
    transition."""
    await repository.get_flag(session, principal, flag_id)
    rows, cursor = await repository.flag_events_page(session, flag_id, page)
    return FlagEventPage(items=[FlagEventRead.model_validate(r) for r in rows], next_cursor=cursor)


@router.get(
    "/v1/clients/{client_id}/health",
    response_model=ClientHealth,
    responses=error_responses(401, 404),
)
async def get_client_health(
    client_id: uuid.UUID, session: SessionDep, principal: CurrentPrincipal
) -> ClientHealth:
    """Health score 0-100 from the open flags (formula in the schema), the open flags with
    their evidence and the score after each run that changed it."""
    await clients_repository.get(session, principal, client_id)
    flags = await repository.open_client_flags(session, client_id)
    history = await repository.health_history(session, client_id)
    return ClientHealth(
        client_id=client_id,
        score=service.health_score(flags),
        open_flags=[FlagRead.model_validate(f) for f in flags],
        history=[HealthPointRead.model_validate(h) for h in history],
    )
