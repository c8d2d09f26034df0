"""Managers: staff who own client accounts or set quotas."""

from __future__ import annotations

import uuid
from enum import StrEnum

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, String, func, text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, ResourceMixin


class ManagerRole(StrEnum):
    associate_account_manager = "associate_account_manager"
    account_manager = "account_manager"
    senior_account_manager = "senior_account_manager"
    team_lead = "team_lead"
    sales_manager = "sales_manager"


class Manager(ResourceMixin, Base):
    __tablename__ = "managers"

    email: Mapped[str] = mapped_column(String(320), nullable=False)
    full_name: Mapped[str] = mapped_column(String(200), nullable=False)
    role: Mapped[str] = mapped_column(String(40), nullable=False)
    reports_to_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("managers.id", ondelete="RESTRICT")
    )
    time_zone: Mapped[str] = mapped_column(String(64), nullable=False, server_default="UTC")
    region: Mapped[str | None] = mapped_column(String(100))
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    external_ref: Mapped[str | None] = mapped_column(String(100), unique=True)

    __table_args__ = (
        Index("uq_managers_email_lower", func.lower(email), unique=True),
        Index("ix_managers_reports_to_id", "reports_to_id"),
        Index("ix_managers_created_at_id", "created_at", "id"),
        CheckConstraint(
            "role IN ('associate_account_manager', 'account_manager', "
            "'senior_account_manager', 'team_lead', 'sales_manager')",
            name="role",
        ),
        CheckConstraint("reports_to_id IS NULL OR reports_to_id <> id", name="not_own_lead"),
        CheckConstraint("btrim(full_name) <> ''", name="full_name_not_blank"),
    )
