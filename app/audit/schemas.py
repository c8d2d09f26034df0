"""Shapes of the audit log API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import Field

from app.core.pagination import Page, PageQuery
from app.core.schemas import Instant, ReadModel


class AuditEventRead(ReadModel):
    seq: int = Field(description="Position in the log (strictly increasing).")
    at: datetime
    actor: str
    roles: list[str]
    source: str = Field(description="api, cli, rule_run or import")
    request_id: str | None
    resource: str
    resource_id: str
    action: str = Field(description="create, update or delete")
    client_id: uuid.UUID | None
    changes: dict[str, Any] = Field(description="{field: [before, after]}")


class AuditEventPage(Page[AuditEventRead]):
    """A page of the audit log, oldest first."""


class AuditFilters(PageQuery):
    resource: str | None = Field(default=None, max_length=50, examples=["clients"])
    resource_id: str | None = Field(default=None, max_length=100)
    actor: str | None = Field(default=None, max_length=200)
    at_from: Instant | None = Field(default=None, description="Inclusive.")
    at_to: Instant | None = Field(default=None, description="Exclusive.")
