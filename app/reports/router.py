"""HTTP routes of ``/v1/reports``: read-only, scoped like every read, JSON or CSV."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from app.core.auth import CurrentPrincipal
from app.core.errors import error_responses
from app.core.schemas import InstantOrDay
from app.core.session import SessionDep
from app.reports import service
from app.reports.export import csv_openapi, csv_response, filename, one_chunk, wants_csv
from app.reports.schemas import (
    AccountStatusPage,
    AccountStatusQuery,
    ComplaintsReport,
    QuotaAttainmentQuery,
    QuotaAttainmentReport,
)

router = APIRouter(tags=["reports"])


def _responses(description: str, *statuses: int) -> dict[int | str, dict[str, Any]]:
    return {**csv_openapi(description), **error_responses(*statuses)}


@router.get(
    "/v1/reports/account-status",
    response_model=AccountStatusPage,
    responses=_responses(
        "One page of clients (JSON). With `Accept: text/csv`: every row from `cursor` on "
        "(`limit` ignored) as a streamed CSV attachment (UTF-8 with BOM, header row, CRLF, "
        "formula-like cells prefixed with `'`), at most 100,000 rows; when capped, a last "
        "row starting with `# truncated` gives the cursor to continue from.",
        401,
        404,
        422,
    ),
)
async def get_account_status_report(
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
    query: Annotated[AccountStatusQuery, Query()],
) -> AccountStatusPage | Response:
    """Report each visible client's responsible manager, health score, last contact and
    open complaints and flags now, cursor-paginated (JSON) or all rows (CSV)."""
    if wants_csv(request.headers.get("accept")):
        chunks = await service.account_status_csv(
            session, request.app.state.sessionmaker, principal, query
        )
        return csv_response(service.ACCOUNT_STATUS_COLUMNS, chunks, filename("account-status"))
    return await service.account_status_page(session, principal, query)


@router.get(
    "/v1/reports/quota-attainment",
    response_model=QuotaAttainmentReport,
    responses=_responses(
        "The report (JSON). With `Accept: text/csv`: a CSV attachment with one `quota` row "
        "per quota, then one `team` row per lead and metric.",
        401,
        404,
        422,
    ),
)
async def get_quota_attainment_report(
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
    query: Annotated[QuotaAttainmentQuery, Query()],
) -> QuotaAttainmentReport | Response:
    """Report target, achieved, ratio and status of every visible quota in a fiscal
    period, with each lead's team roll-up."""
    report = await service.quota_attainment_report(
        session, principal, request.app.state.settings, query
    )
    if wants_csv(request.headers.get("accept")):
        rows = service.quota_attainment_csv_rows(report)
        return csv_response(
            service.QUOTA_ATTAINMENT_COLUMNS,
            one_chunk(rows),
            filename(f"quota-attainment-{report.period}"),
        )
    return report


@router.get(
    "/v1/reports/complaints",
    response_model=ComplaintsReport,
    responses=_responses(
        "The report (JSON). With `Accept: text/csv`: a CSV attachment of "
        "`measure,key,value` rows (status, severity and category counts, then total, "
        "breached and breach_rate).",
        401,
        422,
    ),
)
async def get_complaints_report(
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
    received_from: Annotated[
        InstantOrDay | None,
        Query(
            alias="from",
            description="Received at or after; a date means 00:00 in the organisation's zone.",
        ),
    ] = None,
    received_to: Annotated[
        InstantOrDay | None,
        Query(
            alias="to",
            description="Received before; a date means the end of that day (inclusive).",
        ),
    ] = None,
) -> ComplaintsReport | Response:
    """Report the visible complaints received in a range by status, severity and category,
    with the number breaching an SLA target now and the breach rate."""
    start, end = service.received_range(
        received_from, received_to, request.app.state.settings.org.time_zone
    )
    report = await service.complaints_report(session, principal, start, end)
    if wants_csv(request.headers.get("accept")):
        return csv_response(
            service.COMPLAINTS_COLUMNS,
            one_chunk(service.complaints_csv_rows(report)),
            filename("complaints"),
        )
    return report
