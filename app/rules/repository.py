"""SQL for rules, runs, flags and health."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Row,
    Select,
    String,
    and_,
    exists,
    literal,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession

from app.assignments.models import Assignment
from app.assignments.repository import responsible_condition
from app.assignments.scope import either_visible
from app.core.auth import Principal
from app.core.errors import NotFound
from app.core.pagination import PageQuery, decode_cursor, encode_cursor, keyset, page_of
from app.rules.models import Flag, FlagEvent, FlagStatus, HealthPoint, Rule, RuleRun, RuleVersion
from app.rules.schemas import FlagFilters


async def get_rule(session: AsyncSession, key: str) -> Rule:
    row = await session.get(Rule, key)
    if row is None:
        raise NotFound(f"Rule {key} was not found.")
    return row


async def all_rules(session: AsyncSession) -> list[Rule]:
    return list((await session.execute(select(Rule).order_by(Rule.key))).scalars())


async def versions_page(
    session: AsyncSession, key: str, page: PageQuery
) -> tuple[list[RuleVersion], str | None]:
    stmt = select(RuleVersion).where(RuleVersion.rule_key == key)
    if page.cursor:
        (version,) = decode_cursor(page.cursor, int)
        stmt = stmt.where(RuleVersion.version < version)
    rows = list(
        (
            await session.execute(stmt.order_by(RuleVersion.version.desc()).limit(page.limit + 1))
        ).scalars()
    )
    items = rows[: page.limit]
    return items, encode_cursor(items[-1].version) if len(rows) > page.limit else None


async def get_run(session: AsyncSession, run_id: uuid.UUID) -> RuleRun:
    row = await session.get(RuleRun, run_id)
    if row is None:
        raise NotFound(f"Rule run {run_id} was not found.")
    return row


async def runs_page(session: AsyncSession, page: PageQuery) -> tuple[list[RuleRun], str | None]:
    stmt = select(RuleRun)
    if page.cursor:
        started_at, run_id = decode_cursor(page.cursor)
        stmt = stmt.where(
            or_(
                RuleRun.started_at < started_at,
                and_(RuleRun.started_at == started_at, RuleRun.id < run_id),
            )
        )
    stmt = stmt.order_by(RuleRun.started_at.desc(), RuleRun.id.desc()).limit(page.limit + 1)
    rows = list((await session.execute(stmt)).scalars())
    items = rows[: page.limit]
    cursor = encode_cursor(items[-1].started_at, items[-1].id) if len(rows) > page.limit else None
    return items, cursor


def visible_flags(principal: Principal) -> Select[Flag]:
    """Flags about clients or managers in the caller's scope (``app.assignments.scope``)."""
    return select(Flag).where(either_visible(principal, Flag.client_id, Flag.manager_id))


async def get_flag(
    session: AsyncSession, principal: Principal, flag_id: uuid.UUID, *, lock: bool = False
) -> Flag:
    stmt = visible_flags(principal).where(Flag.id == flag_id)
    if lock:
        stmt = stmt.with_for_update()
    row = (await session.execute(stmt)).scalar_one_or_none()
    if row is None:
        raise NotFound(f"Flag {flag_id} was not found.")
    return row


async def flags_page(
    session: AsyncSession, principal: Principal, filters: FlagFilters, now: datetime
) -> tuple[list[Flag], str | None]:
    """One keyset page of flags (one statement)."""
    conditions: list[Any] = []
    if filters.status is not None:
        conditions.append(Flag.status == filters.status.value)
    if filters.rule is not None:
        conditions.append(Flag.rule_key == filters.rule)
    if filters.severity is not None:
        conditions.append(Flag.severity == filters.severity.value)
    if filters.client_id is not None:
        conditions.append(Flag.client_id == filters.client_id)
    if filters.quota_id is not None:
        conditions.append(Flag.quota_id == filters.quota_id)
    if filters.manager_id is not None:
        responsible_now = exists().where(
            Assignment.client_id == Flag.client_id,
            Assignment.manager_id == filters.manager_id,
            responsible_condition(now),
        )
        conditions.append(or_(Flag.manager_id == filters.manager_id, responsible_now))
    stmt = keyset(visible_flags(principal).where(*conditions), Flag.created_at, Flag.id, filters)
    return page_of((await session.execute(stmt)).scalars().all(), filters.limit)


async def flag_events_page(
    session: AsyncSession, flag_id: uuid.UUID, page: PageQuery
) -> tuple[list[Row[Any]], str | None]:
    """A flag's history in order: its raise, read from the flag itself (event id = the
    flag's id, ``seq`` 0, actor ``rule_run``, the raising run), then its stored events
    (acknowledge, snooze, reopen, resolve). Rows carry the fields of ``FlagEventRead``
    and ``seq``; the cursor is the last ``seq``."""
    raise_event = select(
        Flag.id.label("id"),
        Flag.id.label("flag_id"),
        null().label("from_status"),
        literal(FlagStatus.open.value, String).label("to_status"),
        Flag.raised_at.label("at"),
        literal("rule_run", String).label("actor"),
        Flag.raised_by_run_id.label("run_id"),
        null().label("note"),
        literal(0, BigInteger).label("seq"),
    ).where(Flag.id == flag_id)
    stored = select(
        FlagEvent.id,
        FlagEvent.flag_id,
        FlagEvent.from_status,
        FlagEvent.to_status,
        FlagEvent.at,
        FlagEvent.actor,
        FlagEvent.run_id,
        FlagEvent.note,
        FlagEvent.seq,
    ).where(FlagEvent.flag_id == flag_id)
    events = union_all(raise_event, stored).subquery("events")
    stmt = select(events)
    if page.cursor:
        (seq,) = decode_cursor(page.cursor, int)
        stmt = stmt.where(events.c.seq > seq)
    rows = list((await session.execute(stmt.order_by(events.c.seq).limit(page.limit + 1))).all())
    items = rows[: page.limit]
    return items, encode_cursor(items[-1].seq) if len(rows) > page.limit else None


async def open_client_flags(session: AsyncSession, client_id: uuid.UUID) -> list[Flag]:
    stmt = (
        select(Flag)
        .where(Flag.client_id == client_id, Flag.status != FlagStatus.resolved.value)
        .order_by(Flag.raised_at, Flag.id)
    )
    return list((await session.execute(stmt)).scalars())


async def health_history(session: AsyncSession, client_id: uuid.UUID) -> list[HealthPoint]:
    stmt = (
        select(HealthPoint)
        .where(HealthPoint.client_id == client_id)
        .order_by(HealthPoint.at.desc(), HealthPoint.run_id.desc())
        .limit(100)
    )
    return list((await session.execute(stmt)).scalars())
