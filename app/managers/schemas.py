"""Request and response bodies of ``/v1/managers``."""

from __future__ import annotations

import uuid

from pydantic import EmailStr, Field

from app.core.pagination import Page, PageQuery
from app.core.schemas import (
    AuditedRead,
    ExternalRef,
    Instant,
    Name,
    SearchText,
    StrictModel,
    TimeZoneName,
)
from app.managers.models import ManagerRole


class ManagerCreate(StrictModel):
    email: EmailStr = Field(description="Unique, compared case-insensitively.")
    full_name: Name
    role: ManagerRole = ManagerRole.account_manager
    reports_to_id: uuid.UUID | None = Field(default=None, description="Team lead's manager id.")
    time_zone: TimeZoneName = "UTC"
    region: Name | None = None
    active: bool = True
    external_ref: ExternalRef | None = None


class ManagerUpdate(StrictModel):
    email: EmailStr | None = None
    full_name: Name | None = None
    role: ManagerRole | None = None
    reports_to_id: uuid.UUID | None = None
    time_zone: TimeZoneName | None = None
    region: Name | None = None
    active: bool | None = None
    external_ref: ExternalRef | None = None
    successor_id: uuid.UUID | None = Field(
        default=None,
        description="With `active: false`: hand the manager's open primary assignments to "
        "this manager in the same transaction. Without it, open primaries make it a 409.",
    )


class ManagerRead(AuditedRead):
    email: str
    full_name: str
    role: ManagerRole
    reports_to_id: uuid.UUID | None
    time_zone: str
    region: str | None
    active: bool
    external_ref: str | None


class ManagerFilters(PageQuery):
    """Filters of ``GET /v1/managers``; all combine with AND."""

    role: ManagerRole | None = None
    active: bool | None = None
    reports_to_id: uuid.UUID | None = None
    region: str | None = Field(default=None, max_length=100)
    updated_since: Instant | None = Field(
        default=None, description="Only managers changed at or after this instant."
    )
    q: SearchText | None = None


class ManagerPage(Page[ManagerRead]):
    """A page of managers."""
