"""The reports: figures from the repositories' set-based statements, shaped for JSON or
streamed as CSV rows."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.complaints.models import Category, Severity, Status
from app.config import Settings
from app.core.auth import Principal
from app.core.errors import Unprocessable
from app.core.pagination import decode_cursor, encode_cursor
from app.core.periods import as_instant, start_of_day
from app.managers import repository as managers_repository
from app.quotas import service as quotas_service
from app.quotas.models import Metric
from app.reports import repository
from app.reports.schemas import (
    AccountStatusPage,
    AccountStatusQuery,
    AccountStatusRow,
    ComplaintsReport,
    QuotaAttainmentQuery,
    QuotaAttainmentReport,
    QuotaAttainmentRow,
    TeamRollupRow,
)

# CSV exports read the account status in chunks of this many clients (one statement
# each) and stop after CSV_MAX_ROWS rows with a final note row naming the cursor to go on.
CSV_CHUNK = 1_000
CSV_MAX_ROWS = 100_000
RATE_PLACES = Decimal("0.0001")

ACCOUNT_STATUS_COLUMNS = (
    "client_id",
    "client_name",
    "segment",
    "country",
    "responsible_manager_id",
    "responsible_manager_name",
    "health_score",
    "last_contact_at",
    "open_complaints",
    "open_flags",
)
QUOTA_ATTAINMENT_COLUMNS = (
    "kind",
    "quota_id",
    "manager_id",
    "manager_name",
    "metric",
    "unit",
    "period_start",
    "period_end",
    "target",
    "achieved",
    "ratio",
    "status",
    "quotas",
)
COMPLAINTS_COLUMNS = ("measure", "key", "value")


# --- Account status -------------------------------------------------------------------


def _account_row(row: Any) -> AccountStatusRow:
    return AccountStatusRow.model_validate(row)


async def _check_account_status_query(
    session: AsyncSession, principal: Principal, query: AccountStatusQuery
) -> None:
    """Raise NotFound for a manager out of scope, Unprocessable for a bad cursor (before
    anything is streamed)."""
    if query.manager_id is not None:
        await managers_repository.get(session, principal, query.manager_id)
    if query.cursor:
        decode_cursor(query.cursor)


async def _account_chunk(
    session: AsyncSession,
    principal: Principal,
    query: AccountStatusQuery,
    cursor: str | None,
    size: int,
) -> tuple[list[Any], str | None]:
    """Up to ``size`` rows after ``cursor`` and the cursor after them (None: the end)."""
    rows = await repository.account_status_rows(
        session,
        principal,
        manager_id=query.manager_id,
        include_team=query.include_team,
        cursor=cursor,
        limit=size + 1,
    )
    page = rows[:size]
    if len(rows) > size:
        return page, encode_cursor(page[-1].created_at, page[-1].client_id)
    return page, None


async def account_status_page(
    session: AsyncSession, principal: Principal, query: AccountStatusQuery
) -> AccountStatusPage:
    """One keyset page of the account status report (one statement for the page, plus one
    to check ``manager_id``). Raises NotFound (manager out of scope), Unprocessable
    (cursor)."""
    await _check_account_status_query(session, principal, query)
    rows, cursor = await _account_chunk(session, principal, query, query.cursor, query.limit)
    return AccountStatusPage(items=[_account_row(r) for r in rows], next_cursor=cursor)


def _account_csv_row(row: Any) -> tuple[Any, ...]:
    return tuple(getattr(row, name) for name in ACCOUNT_STATUS_COLUMNS)


async def account_status_csv(
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    principal: Principal,
    query: AccountStatusQuery,
) -> AsyncIterator[list[Sequence[Any]]]:
    """Every row of the report from ``query.cursor`` on (``limit`` is ignored), in chunks
    of ``CSV_CHUNK`` rows, at most ``CSV_MAX_ROWS`` rows.

    The checks and the first chunk run now, on the request's session, so errors are still
    problem responses; the rest is read while the response streams, with a session of its
    own (the request's is closed by then). Each chunk is one statement; the keyset cursor
    means no client is repeated or skipped when clients are added meanwhile. When the cap
    is hit, a last row says so and gives the cursor to continue from."""
    await _check_account_status_query(session, principal, query)
    limit = CSV_MAX_ROWS
    first, cursor = await _account_chunk(
        session, principal, query, query.cursor, min(CSV_CHUNK, limit)
    )

    async def chunks() -> AsyncIterator[list[Sequence[Any]]]:
        yield [_account_csv_row(r) for r in first]
        sent, after = len(first), cursor
        if after is None:
            return
        async with sessionmaker() as reader:
            while after is not None and sent < limit:
                rows, after = await _account_chunk(
                    reader, principal, query, after, min(CSV_CHUNK, limit - sent)
                )
                sent += len(rows)
                yield [_account_csv_row(r) for r in rows]
        if after is not None:
            yield [
                (f"# truncated after {sent} rows; request again with cursor={after} for the rest",)
            ]

    return chunks()


# --- Quota attainment -----------------------------------------------------------------


async def quota_attainment_report(
    session: AsyncSession, principal: Principal, settings: Settings, query: QuotaAttainmentQuery
) -> QuotaAttainmentReport:
    """Every quota inside the period in the caller's scope (of ``query.manager_id``'s team
    when given) with achieved, target, ratio and status as
    ``quotas.service.quota_figures`` computes them, and each lead's team roll-up from
    ``quotas.service.team_attainment`` (one statement for the quotas, one per lead).

    Raises NotFound (manager out of scope), Unprocessable (unknown period; a sale or
    target without an FX rate)."""
    try:
        period = quotas_service.calendar(settings).resolve(query.period)
    except ValueError as exc:
        raise Unprocessable.field("query.period", str(exc)) from exc
    if query.manager_id is not None:
        await managers_repository.get(session, principal, query.manager_id)
    time_zone = settings.org.time_zone
    as_of = as_instant(query.as_of, time_zone)
    currency = query.currency or settings.org.currency
    rows = await repository.quota_achievements(
        session,
        principal,
        lead_id=query.manager_id,
        start=period.start,
        end=period.end,
        as_of=as_of,
        time_zone=time_zone,
    )
    quotas: list[QuotaAttainmentRow] = []
    for row in rows:
        figures = quotas_service.quota_figures(row, as_of)
        quotas.append(
            QuotaAttainmentRow(
                quota_id=row.id,
                manager_id=row.manager_id,
                manager_name=row.manager_name,
                metric=Metric(row.metric),
                unit=figures.unit,
                period_start=row.period_start,
                period_end=row.period_end,
                target=figures.target,
                achieved=figures.achieved,
                ratio=figures.ratio,
                status=figures.status,
            )
        )
    teams: list[TeamRollupRow] = []
    for lead in await repository.leads(session, principal, query.manager_id):
        team = await quotas_service.team_attainment(
            session, settings, lead.id, query.period, as_of, currency
        )
        teams.extend(
            TeamRollupRow(
                lead_id=lead.id,
                lead_name=lead.full_name,
                metric=total.metric,
                unit=total.unit,
                target=total.target,
                achieved=total.achieved,
                ratio=total.ratio,
                quotas=total.quotas,
            )
            for total in team.totals
        )
    return QuotaAttainmentReport(
        period=period.label,
        period_start=period.start,
        period_end=period.end,
        as_of=as_of,
        currency=currency,
        quotas=quotas,
        teams=teams,
    )


def quota_attainment_csv_rows(report: QuotaAttainmentReport) -> list[Sequence[Any]]:
    """The report as CSV rows (``QUOTA_ATTAINMENT_COLUMNS``): ``quota`` rows, then
    ``team`` rows (manager = the lead; period = the report's)."""
    rows: list[Sequence[Any]] = [
        (
            "quota",
            q.quota_id,
            q.manager_id,
            q.manager_name,
            q.metric,
            q.unit,
            q.period_start,
            q.period_end,
            q.target,
            q.achieved,
            q.ratio,
            q.status,
            None,
        )
        for q in report.quotas
    ]
    rows.extend(
        (
            "team",
            None,
            t.lead_id,
            t.lead_name,
            t.metric,
            t.unit,
            report.period_start,
            report.period_end,
            t.target,
            t.achieved,
            t.ratio,
            None,
            t.quotas,
        )
        for t in report.teams
    )
    return rows


# --- Complaints -----------------------------------------------------------------------


def received_range(
    received_from: datetime | date | None, received_to: datetime | date | None, time_zone: str
) -> tuple[datetime | None, datetime | None]:
    """``[from, to)`` instants: ``from`` as a date is 00:00 of that day, ``to`` as a date
    is the end of that day (00:00 of the next), both in ``time_zone``; instants as given.
    Raises Unprocessable when the range is empty."""
    start = as_instant(received_from, time_zone) if received_from is not None else None
    if received_to is None:
        end = None
    elif isinstance(received_to, datetime):
        end = as_instant(received_to, time_zone)
    else:
        end = start_of_day(received_to + timedelta(days=1), time_zone)
    if start is not None and end is not None and end <= start:
        raise Unprocessable.field("query.to", "to must be after from.")
    return start, end


async def complaints_report(
    session: AsyncSession,
    principal: Principal,
    received_from: datetime | None,
    received_to: datetime | None,
) -> ComplaintsReport:
    """Counts of the visible complaints received in ``[received_from, received_to)`` by
    status, severity and category, the total, how many breach an SLA target now and the
    breach rate (breached ÷ total, 4 decimals, half-even); one statement."""
    by_status = dict.fromkeys(Status, 0)
    by_severity = dict.fromkeys(Severity, 0)
    by_category = dict.fromkeys(Category, 0)
    total = breached = 0
    for row in await repository.complaint_counts(session, principal, received_from, received_to):
        by_status[Status(row.status)] += row.total
        by_severity[Severity(row.severity)] += row.total
        by_category[Category(row.category)] += row.total
        total += row.total
        breached += row.breached
    rate = (Decimal(breached) / Decimal(total)) if total else Decimal(0)
    return ComplaintsReport(
        received_from=received_from,
        received_to=received_to,
        total=total,
        breached=breached,
        breach_rate=format(rate.quantize(RATE_PLACES, rounding=ROUND_HALF_EVEN), "f"),
        by_status=by_status,
        by_severity=by_severity,
        by_category=by_category,
    )


def complaints_csv_rows(report: ComplaintsReport) -> list[Sequence[Any]]:
    """The report as ``(measure, key, value)`` rows: one per status, severity and
    category, then total, breached and breach_rate."""
    rows: list[Sequence[Any]] = []
    for measure, counts in (
        ("status", report.by_status),
        ("severity", report.by_severity),
        ("category", report.by_category),
    ):
        rows.extend((measure, key, count) for key, count in counts.items())
    rows.extend(
        [
            ("total", None, report.total),
            ("breached", None, report.breached),
            ("breach_rate", None, report.breach_rate),
        ]
    )
    return rows
