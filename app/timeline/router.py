"""``GET /v1/clients/{id}/timeline``."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from app.clients import repository as clients_repository
from app.core.auth import CurrentPrincipal
from app.core.errors import error_responses
from app.core.session import SessionDep
from app.timeline import repository
from app.timeline.schemas import TimelinePage, TimelineQuery

router = APIRouter(tags=["clients"])


@router.get(
    "/v1/clients/{client_id}/timeline",
    response_model=TimelinePage,
    responses=error_responses(401, 404, 422),
)
async def get_client_timeline(
    client_id: uuid.UUID,
    session: SessionDep,
    principal: CurrentPrincipal,
    query: Annotated[TimelineQuery, Query()],
) -> TimelinePage:
    """Interactions, complaints and their status changes, and assignment changes of the
    client in time order (ties broken by kind, then id), cursor-paginated."""
    await clients_repository.check_visible(session, principal, client_id)
    items, cursor = await repository.timeline_page(session, client_id, query)
    return TimelinePage(items=items, next_cursor=cursor)
