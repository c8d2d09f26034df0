"""Every domain's models, imported once: the registry Alembic and tests use."""

from app.assignments.models import Absence, Assignment
from app.audit.models import AuditEvent
from app.clients.models import Client
from app.complaints.models import Complaint, ComplaintTransition, SlaPolicy
from app.core.db import Base
from app.core.http import IdempotencyRecord
from app.imports.models import ImportJob
from app.interactions.models import Interaction
from app.managers.models import Manager
from app.quotas.models import Quota
from app.rules.models import Flag, FlagEvent, HealthPoint, Rule, RuleRun, RuleVersion
from app.sales.models import FxRate, Sale

__all__ = [
    "Absence",
    "Assignment",
    "AuditEvent",
    "Base",
    "Client",
    "Complaint",
    "ComplaintTransition",
    "Flag",
    "FlagEvent",
    "FxRate",
    "HealthPoint",
    "IdempotencyRecord",
    "ImportJob",
    "Interaction",
    "Manager",
    "Quota",
    "Rule",
    "RuleRun",
    "RuleVersion",
    "Sale",
    "SlaPolicy",
]
