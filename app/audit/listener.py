"""Writes an audit row for every ORM insert, update and delete, in the same flush (so
in the same transaction: a failed request leaves no audit row behind).

Who and where come from ``session.info["audit"]`` (an :class:`AuditContext`, set by the
request's session dependency, the CLI or the rule engine). Set-based statements that
bypass the ORM (rule runs, absence covers) write their audit rows themselves.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any

from sqlalchemy import event, insert, inspect
from sqlalchemy.orm import Session, UOWTransaction

from app.audit.models import AuditEvent

# Columns whose change alone is bookkeeping, not content.
IGNORED = frozenset({"updated_at", "updated_by", "version", "period"})


@dataclass
class AuditContext:
    """Who is writing: the actor, their roles, the source (api, cli, rule_run, import)
    and the request id; ``resolve`` fills actor/roles late (after authentication)."""

    actor: str = "system"
    roles: list[str] = field(default_factory=list)
    source: str = "api"
    request_id: str | None = None
    resolve: Any = None

    def who(self) -> tuple[str, list[str]]:
        if self.resolve is not None:
            principal = self.resolve()
            if principal is not None:
                return principal.subject, sorted(r.value for r in principal.roles)
        return self.actor, self.roles


def jsonable(value: Any) -> Any:
    """A JSON-safe form of a column value (UUIDs, instants, money as strings)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Enum):
        return jsonable(value.value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return str(value)


def _columns(obj: Any) -> list[str]:
    return [c.key for c in inspect(obj).mapper.column_attrs if c.key not in IGNORED]


def _identity(obj: Any) -> str:
    # New rows have no identity yet inside after_flush; their primary key is set.
    key = inspect(obj).mapper.primary_key_from_instance(obj)
    return ",".join(str(k) for k in key if k is not None)


def _client_of(obj: Any) -> Any:
    if obj.__tablename__ == "clients":
        return obj.id
    return getattr(obj, "client_id", None)


@event.listens_for(Session, "after_flush")
def _write_audit_rows(session: Session, flush_context: UOWTransaction) -> None:
    context: AuditContext | None = session.info.get("audit")
    if context is None:
        return
    rows: list[dict[str, Any]] = []
    actor, roles = context.who()

    def add(obj: Any, action: str, changes: dict[str, Any]) -> None:
        rows.append(
            {
                "actor": actor,
                "roles": roles,
                "source": context.source,
                "request_id": context.request_id,
                "resource": obj.__tablename__,
                "resource_id": _identity(obj),
                "action": action,
                "client_id": _client_of(obj),
                "changes": changes,
            }
        )

    for obj in session.new:
        if getattr(obj, "__audited__", False):
            values = inspect(obj).dict  # only what is loaded: no lazy load inside a flush
            add(obj, "create", {k: [None, jsonable(values.get(k))] for k in _columns(obj)})
    for obj in session.dirty:
        if not getattr(obj, "__audited__", False):
            continue
        state = inspect(obj)
        changes: dict[str, Any] = {}
        for key in _columns(obj):
            history = state.attrs[key].history
            if history.has_changes():
                before = history.deleted[0] if history.deleted else None
                after = history.added[0] if history.added else None
                if before != after:
                    changes[key] = [jsonable(before), jsonable(after)]
        if changes:
            add(obj, "update", changes)
    for obj in session.deleted:
        if getattr(obj, "__audited__", False):
            values = inspect(obj).dict
            add(obj, "delete", {k: [jsonable(values.get(k)), None] for k in _columns(obj)})
    if rows:
        session.connection().execute(insert(AuditEvent), rows)


def audit_objects(session: Session, objects: list[Any], action: str) -> None:
    """Audit rows for rows written by a set-based statement (the ORM did not see them)."""
    context: AuditContext | None = session.info.get("audit")
    if context is None or not objects:
        return
    actor, roles = context.who()
    session.connection().execute(
        insert(AuditEvent),
        [
            {
                "actor": actor,
                "roles": roles,
                "source": context.source,
                "request_id": context.request_id,
                "resource": obj.__tablename__,
                "resource_id": _identity(obj),
                "action": action,
                "client_id": _client_of(obj),
                "changes": {k: [None, jsonable(inspect(obj).dict.get(k))] for k in _columns(obj)},
            }
            for obj in objects
        ],
    )
