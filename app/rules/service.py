"""Rule configuration, flag lifecycle and health."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.auth import Principal
from app.core.errors import Conflict, Unprocessable
from app.core.http import check_if_match
from app.rules import repository
from app.rules.catalogue import CATALOGUE
from app.rules.engine import SEVERITY_POINTS, validate_params
from app.rules.models import Flag, FlagEvent, FlagStatus, Rule, RuleVersion
from app.rules.schemas import FlagAction, FlagTransitionCreate, RuleRead, RuleUpdate

# open → acknowledged | snoozed | resolved; acknowledged → snoozed | resolved;
# snoozed → open (wake early) | resolved. Resolved is final (a later run may raise anew).
FLAG_TRANSITIONS: dict[FlagStatus, tuple[FlagStatus, ...]] = {
    FlagStatus.open: (FlagStatus.acknowledged, FlagStatus.snoozed, FlagStatus.resolved),
    FlagStatus.acknowledged: (FlagStatus.snoozed, FlagStatus.resolved),
    FlagStatus.snoozed: (FlagStatus.open, FlagStatus.resolved),
    FlagStatus.resolved: (),
}


def rule_read(row: Rule) -> RuleRead:
    rule = CATALOGUE[row.key]
    return RuleRead(
        key=row.key,
        name=rule.name,
        description=rule.description,
        subject_type=row.subject_type,
        severity=row.severity,
        enabled=row.enabled,
        params=row.params,
        params_schema=rule.params_model.model_json_schema(),
        version=row.version,
        updated_at=row.updated_at,
        updated_by=row.updated_by,
    )


async def update_rule(
    session: AsyncSession, principal: Principal, key: str, data: RuleUpdate, if_match: str | None
) -> Rule:
    """Change a rule; every change is a new version (kept in ``rule_versions``).

    Raises NotFound, PreconditionFailed, Unprocessable (a parameter fails its schema)."""
    row = await repository.get_rule(session, key)
    check_if_match(if_match, row.version)
    changes = data.model_dump(exclude_unset=True)
    if "params" in changes:
        if changes["params"] is None:
            raise Unprocessable.field("body.params", "params cannot be null.")
        params = validate_params(CATALOGUE[key], changes["params"], "body.params")
        row.params = params.model_dump(mode="json")
    if changes.get("enabled") is not None:
        row.enabled = changes["enabled"]
    if changes.get("severity") is not None:
        row.severity = changes["severity"].value
    if not changes:
        return row
    row.updated_at = datetime.now(UTC)
    row.updated_by = principal.subject
    await session.flush()
    session.add(
        RuleVersion(
            rule_key=row.key,
            version=row.version,
            severity=row.severity,
            enabled=row.enabled,
            params=row.params,
            changed_by=principal.subject,
        )
    )
    await session.flush()
    await session.refresh(row)
    return row


async def transition_flag(
    session: AsyncSession, principal: Principal, flag_id: uuid.UUID, data: FlagTransitionCreate
) -> Flag:
    """Acknowledge, snooze (until a date), wake or resolve a flag, with actor and note.

    Raises NotFound; Conflict for a move the lifecycle does not allow (names the allowed
    ones); Unprocessable when snoozing without a future ``until``."""
    flag = await repository.get_flag(session, principal, flag_id, lock=True)
    current = FlagStatus(flag.status)
    target = FlagStatus(data.to.value)
    allowed = FLAG_TRANSITIONS[current]
    if target not in allowed:
        raise Conflict(
            f"A {current.value} flag cannot become {target.value}; allowed: "
            + (", ".join(s.value for s in allowed) or "none (resolved is final)")
            + ".",
            extra={"current_status": current.value, "allowed": [s.value for s in allowed]},
        )
    now = datetime.now(UTC)
    if data.to == FlagAction.snoozed:
        if data.until is None or data.until <= now:
            raise Unprocessable.field("body.until", "Snoozing needs an `until` in the future.")
        flag.snoozed_until = data.until
    else:
        flag.snoozed_until = None
    if target == FlagStatus.resolved:
        flag.resolved_at = now
        flag.resolved_by = "user"
    flag.status = target.value
    flag.note = data.note or flag.note
    flag.updated_by = principal.subject
    session.add(
        FlagEvent(
            flag_id=flag.id,
            client_id=flag.client_id,
            from_status=current.value,
            to_status=target.value,
            at=now,
            actor=principal.subject,
            note=data.note,
        )
    )
    await session.flush()
    await session.refresh(flag)
    return flag


def health_score(flags: list[Flag]) -> int:
    """max(0, 100 − Σ points of open/acknowledged flags): critical 40, high 25, medium 10,
    low 5 (the same formula the engine uses for the history)."""
    points = sum(
        SEVERITY_POINTS.get(f.severity, 0)
        for f in flags
        if f.status in (FlagStatus.open.value, FlagStatus.acknowledged.value)
    )
    return max(0, 100 - points)
