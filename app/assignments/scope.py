"""Row-level scope: which clients and managers a caller may see, as SQL subqueries that
every repository's ``visible()`` builds on (never a filter in Python after the fetch).

* ``admin``, ``viewer``, ``service``: everything (``None``: no restriction).
* ``account_manager``: the clients they are primary, secondary or cover for *now*
  (a cover gains access when it starts and loses it when it ends); themselves.
* ``sales_manager``: the managers who report to them, recursively, and themselves; the
  clients any of those managers is assigned to now.
A caller with several roles gets the union. A manager role without a manager id as
the token subject sees nothing.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ColumnElement, Select, Uuid, false, func, literal, or_, select

from app.assignments.models import Assignment
from app.core.auth import Principal, Role
from app.managers.models import Manager

UNRESTRICTED = frozenset({Role.admin, Role.viewer, Role.service})
MANAGER_ROLES = frozenset({Role.account_manager, Role.sales_manager})


def team_ids(manager_id: uuid.UUID) -> Select[Any]:
    """``manager_id`` and everyone who reports to them, recursively."""
    team = (
        select(Manager.id.label("id"))
        .where(Manager.id == manager_id)
        .cte(f"team_{manager_id.hex[:8]}", recursive=True)
    )
    team = team.union(select(Manager.id).where(Manager.reports_to_id == team.c.id))
    return select(team.c.id)


def unrestricted(principal: Principal) -> bool:
    """Admins see everything; so do pure readers (viewer, service). A manager role with a
    reader role keeps its manager scope, so adding a reader role never widens writes."""
    if Role.admin in principal.roles:
        return True
    return principal.has_any(UNRESTRICTED) and not principal.has_any(MANAGER_ROLES)


def manager_scope(principal: Principal) -> Select[Any] | None:
    """Manager ids the caller may see, or ``None`` for all."""
    if unrestricted(principal):
        return None
    me = principal.manager_id
    if me is None:
        return select(literal(None, Uuid).label("id")).where(false())
    if Role.sales_manager in principal.roles:
        return team_ids(me)
    return select(literal(me, Uuid).label("id"))


def client_scope(principal: Principal, managers: Select[Any] | None = None) -> Select[Any] | None:
    """Client ids the caller may see, or ``None`` for all (``managers``: the caller's
    manager scope when already built, so one statement holds one team CTE)."""
    managers = managers if managers is not None else manager_scope(principal)
    if managers is None:
        return None
    return select(Assignment.client_id).where(
        Assignment.manager_id.in_(managers), Assignment.period.contains(func.now())
    )


def clients_visible(principal: Principal, client_id: Any) -> ColumnElement[bool]:
    """SQL condition: ``client_id`` is in the caller's scope."""
    scope = client_scope(principal)
    return literal(True) if scope is None else client_id.in_(scope)


def managers_visible(principal: Principal, manager_id: Any) -> ColumnElement[bool]:
    """SQL condition: ``manager_id`` is in the caller's scope."""
    scope = manager_scope(principal)
    return literal(True) if scope is None else manager_id.in_(scope)


def either_visible(principal: Principal, client_id: Any, manager_id: Any) -> ColumnElement[bool]:
    """A record about a client or a manager: visible when either one is in scope."""
    managers = manager_scope(principal)
    if managers is None:
        return literal(True)
    clients = client_scope(principal, managers)
    assert clients is not None
    return or_(client_id.in_(clients), manager_id.in_(managers))
