"""The client timeline as one UNION ALL statement per page.

Events are ordered by ``(at, kind, id)``, a total order, so equal timestamps come back
in the same order on every call and the keyset cursor never skips or repeats.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Integer,
    Select,
    String,
    and_,
    bindparam,
    func,
    literal,
    literal_column,
    or_,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession

from app.assignments.models import Assignment
from app.complaints.models import Complaint, ComplaintTransition
from app.core.pagination import decode_cursor, encode_cursor
from app.interactions.models import Interaction
from app.rules.models import Flag, FlagEvent
from app.timeline.schemas import EventKind, TimelineEvent, TimelineOrder, TimelineQuery


def _events(client_id: Any) -> dict[EventKind, Any]:
    def kind(value: EventKind) -> Any:
        return literal(value.value, type_=String).label("kind")

    return {
        EventKind.interaction: select(
            Interaction.occurred_at.label("at"),
            kind(EventKind.interaction),
            Interaction.id.label("id"),
            Interaction.subject.label("summary"),
            func.json_build_object(
                "manager_id",
                Interaction.manager_id,
                "channel",
                Interaction.channel,
                "direction",
                Interaction.direction,
                "sentiment",
                Interaction.sentiment,
                "duration_minutes",
                Interaction.duration_minutes,
            ).label("data"),
        ).where(Interaction.client_id == client_id),
        EventKind.complaint_received: select(
            Complaint.received_at,
            kind(EventKind.complaint_received),
            Complaint.id,
            Complaint.title,
            func.json_build_object(
                "severity",
                Complaint.severity,
                "category",
                Complaint.category,
                "status",
                Complaint.status,
                "assignee_id",
                Complaint.assignee_id,
            ),
        ).where(Complaint.client_id == client_id),
        EventKind.complaint_transition: select(
            ComplaintTransition.at,
            kind(EventKind.complaint_transition),
            ComplaintTransition.id,
            ComplaintTransition.from_status + " → " + ComplaintTransition.to_status,
            func.json_build_object(
                "complaint_id",
                ComplaintTransition.complaint_id,
                "from_status",
                ComplaintTransition.from_status,
                "to_status",
                ComplaintTransition.to_status,
                "actor",
                ComplaintTransition.actor,
                "note",
                ComplaintTransition.note,
            ),
        ).where(
            ComplaintTransition.client_id == client_id,
            ComplaintTransition.from_status.is_not(None),
        ),
        EventKind.assignment_started: select(
            Assignment.starts_at,
            kind(EventKind.assignment_started),
            Assignment.id,
            Assignment.role + " assignment started",
            func.json_build_object(
                "manager_id",
                Assignment.manager_id,
                "role",
                Assignment.role,
                "reason",
                Assignment.reason,
                "ends_at",
                Assignment.ends_at,
            ),
        ).where(Assignment.client_id == client_id, Assignment.starts_at <= func.now()),
        EventKind.assignment_ended: select(
            Assignment.ends_at,
            kind(EventKind.assignment_ended),
            Assignment.id,
            Assignment.role + " assignment ended",
            func.json_build_object(
                "manager_id",
                Assignment.manager_id,
                "role",
                Assignment.role,
                "reason",
                Assignment.reason,
                "starts_at",
                Assignment.starts_at,
            ),
        ).where(Assignment.client_id == client_id, Assignment.ends_at <= func.now()),
        EventKind.flag_raised: _flag_events(client_id, EventKind.flag_raised),
        EventKind.flag_resolved: _flag_events(client_id, EventKind.flag_resolved),
    }


def _flag_events(client_id: Any, kind: EventKind) -> Any:
    """Flags raised (read from the flags: a raise is the flag's own record, its event id
    the flag's id) or resolved (their stored ``resolved`` events)."""
    raised = kind == EventKind.flag_raised
    no_note: Any = literal_column("CAST(NULL AS text)")
    at, event_id, actor, note = (
        (Flag.raised_at, Flag.id, literal_column("'rule_run'"), no_note)
        if raised
        else (FlagEvent.at, FlagEvent.id, FlagEvent.actor, FlagEvent.note)
    )
    stmt = select(
        at.label("at"),
        literal(kind.value, type_=String).label("kind"),
        event_id.label("id"),
        (Flag.rule_key + (" raised" if raised else " resolved")).label("summary"),
        func.json_build_object(
            "flag_id",
            Flag.id,
            "rule_key",
            Flag.rule_key,
            "severity",
            Flag.severity,
            "actor",
            actor,
            "note",
            note,
        ).label("data"),
    )
    if raised:
        return stmt.where(Flag.client_id == client_id)
    return stmt.join(Flag, Flag.id == FlagEvent.flag_id).where(
        FlagEvent.client_id == client_id, FlagEvent.to_status == "resolved"
    )


# Statements by (kinds, descending, after a cursor), built once each (at most 2^7 x 4):
# building the seven-arm union and its cache key per request costs more than running it.
# Values are bound parameters: client_id, limit and, after a cursor, c_at, c_kind, c_id.
_statements: dict[tuple[frozenset[EventKind], bool, bool], Select[Any]] = {}


def _page_statement(kinds: frozenset[EventKind], descending: bool, after: bool) -> Select[Any]:
    key = (kinds, descending, after)
    found = _statements.get(key)
    if found is not None:
        return found
    parts = _events(bindparam("client_id"))
    events = union_all(*(p for k, p in parts.items() if k in kinds)).subquery("events")
    # By position: a union's column names are those of whichever part comes first.
    at, kind, event_id = list(events.c)[:3]
    stmt = select(events)
    if after:
        c_at: Any = bindparam("c_at")
        c_kind: Any = bindparam("c_kind")
        c_id: Any = bindparam("c_id")
        if descending:
            condition = or_(
                at < c_at,
                and_(at == c_at, or_(kind < c_kind, and_(kind == c_kind, event_id < c_id))),
            )
        else:
            condition = or_(
                at > c_at,
                and_(at == c_at, or_(kind > c_kind, and_(kind == c_kind, event_id > c_id))),
            )
        stmt = stmt.where(condition)
    keys = (at.desc(), kind.desc(), event_id.desc()) if descending else (at, kind, event_id)
    stmt = stmt.order_by(*keys).limit(bindparam("limit", type_=Integer))
    _statements[key] = stmt
    return stmt


async def timeline_page(
    session: AsyncSession, client_id: uuid.UUID, query: TimelineQuery
) -> tuple[list[TimelineEvent], str | None]:
    """One page of the client's timeline (one statement). Only events that have happened
    (assignments starting or ending later are not shown yet)."""
    kinds = frozenset(query.kinds or EventKind)
    descending = query.order == TimelineOrder.desc
    params: dict[str, Any] = {"client_id": client_id, "limit": query.limit + 1}
    if query.cursor:
        params["c_at"], params["c_kind"], params["c_id"] = decode_cursor(
            query.cursor, datetime, str, uuid.UUID
        )
    stmt = _page_statement(kinds, descending, bool(query.cursor))
    rows = (await session.execute(stmt, params)).all()
    items = [
        TimelineEvent(at=r[0], kind=r[1], id=r[2], summary=r[3], data=r[4])
        for r in rows[: query.limit]
    ]
    cursor = None
    if len(rows) > query.limit:
        last = items[-1]
        cursor = encode_cursor(last.at, last.kind.value, last.id)
    return items, cursor
