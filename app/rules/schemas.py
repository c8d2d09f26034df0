"""Request and response bodies of rules, rule runs, flags and client health."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field

from app.complaints.models import Severity
from app.core.pagination import Page, PageQuery
from app.core.schemas import AuditedRead, Instant, Integer, ReadModel, StrictModel
from app.rules.models import FlagStatus, SubjectType


class RuleRead(ReadModel):
    key: str
    name: str
    description: str
    subject_type: SubjectType
    severity: Severity
    enabled: bool
    params: dict[str, Any]
    params_schema: dict[str, Any] = Field(description="JSON Schema of `params`.")
    version: int
    updated_at: datetime
    updated_by: str | None


class RulePage(Page[RuleRead]):
    """The rule catalogue."""


class RuleUpdate(StrictModel):
    enabled: bool | None = None
    severity: Severity | None = None
    params: dict[str, Any] | None = Field(
        default=None, description="Replaces the parameters; validated by the rule's schema."
    )


class RuleVersionRead(ReadModel):
    rule_key: str
    version: int
    severity: Severity
    enabled: bool
    params: dict[str, Any]
    changed_at: datetime
    changed_by: str | None


class RuleVersionPage(Page[RuleVersionRead]):
    """A rule's versions, newest first."""


class RuleRunCreate(StrictModel):
    as_of: Instant | None = Field(default=None, description="Default: now.")


class RuleRunRead(ReadModel):
    id: uuid.UUID
    as_of: datetime
    started_at: datetime
    finished_at: datetime
    duration_ms: int
    trigger: str
    actor: str
    raised: int
    still_open: int
    resolved: int
    reopened: int
    per_rule: dict[str, dict[str, int]] = Field(
        description="Per rule: matched, raised, still_open, resolved, reopened, match_ms."
    )


class RuleRunPage(Page[RuleRunRead]):
    """Rule runs, newest first."""


class RuleOverride(StrictModel):
    enabled: bool | None = None
    severity: Severity | None = None
    params: dict[str, Any] | None = Field(default=None, description="Merged over the stored.")


class SimulationRequest(StrictModel):
    as_of: Instant | None = Field(default=None, description="Default now; may be past.")
    overrides: dict[str, RuleOverride] = Field(default_factory=dict)
    limit: Integer = Field(default=100, ge=0, le=1000, description="How many matches to list.")


class SimulatedFlag(ReadModel):
    rule_key: str
    severity: Severity
    subject_type: SubjectType
    subject_id: uuid.UUID
    client_id: uuid.UUID | None
    quota_id: uuid.UUID | None
    manager_id: uuid.UUID | None
    evidence: dict[str, Any]
    already_open: bool


class SimulationResult(ReadModel):
    """What a run would do; nothing was written."""

    as_of: datetime
    per_rule: dict[str, dict[str, int]] = Field(
        description="Per rule: matched, would_raise, would_resolve, match_ms."
    )
    flags: list[SimulatedFlag]


class FlagRead(AuditedRead):
    rule_key: str
    rule_version: int
    subject_type: SubjectType
    subject_id: uuid.UUID
    client_id: uuid.UUID | None
    quota_id: uuid.UUID | None
    manager_id: uuid.UUID | None
    severity: Severity
    status: FlagStatus
    evidence: dict[str, Any]
    raised_at: datetime
    raised_by_run_id: uuid.UUID
    snoozed_until: datetime | None
    resolved_at: datetime | None
    resolved_by: str | None
    note: str | None


class FlagPage(Page[FlagRead]):
    """A page of flags."""


class FlagFilters(PageQuery):
    status: FlagStatus | None = None
    rule: str | None = Field(default=None, max_length=50)
    severity: Severity | None = None
    client_id: uuid.UUID | None = None
    manager_id: uuid.UUID | None = Field(
        default=None,
        description="Client flags of the clients this manager is responsible for now, and "
        "flags about the manager or their quotas.",
    )
    quota_id: uuid.UUID | None = None


class FlagAction(StrEnum):
    acknowledged = "acknowledged"
    snoozed = "snoozed"
    resolved = "resolved"
    open = "open"


class FlagTransitionCreate(StrictModel):
    to: FlagAction
    until: Instant | None = Field(default=None, description="Required to snooze.")
    note: str | None = Field(default=None, max_length=2000)


class FlagEventRead(ReadModel):
    id: uuid.UUID
    flag_id: uuid.UUID
    from_status: FlagStatus | None
    to_status: FlagStatus
    at: datetime
    actor: str
    run_id: uuid.UUID | None
    note: str | None


class FlagEventPage(Page[FlagEventRead]):
    """A flag's history, in order."""


class HealthPointRead(ReadModel):
    at: datetime
    score: int
    run_id: uuid.UUID


class ClientHealth(ReadModel):
    """Score = max(0, 100 − Σ points of open and acknowledged flags), with critical 40,
    high 25, medium 10, low 5 points; snoozed and resolved flags do not count."""

    client_id: uuid.UUID
    score: int = Field(ge=0, le=100)
    open_flags: list[FlagRead]
    history: list[HealthPointRead] = Field(
        description="Score after each rule run that changed it, newest first (last 100)."
    )
