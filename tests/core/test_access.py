"""Row-level access control (issue 7, items 2 and 4), through HTTP.

One world is built per test (as admin, in the test's rolled-back transaction):

* managers: ``L`` a lead (token role sales_manager), ``T`` reports to ``L``, ``G`` reports
  to ``T`` (a grand-report), ``A`` (token role account_manager), ``O`` an outsider,
  ``R`` reports to ``A``, ``SPARE_T`` (reports to ``T``) and ``SPARE_O`` without history;
* clients, all active with one interaction, one critical complaint, one sale and the
  ``open_complaints`` flag a rule run raises for it: ``CA`` (``A`` primary), ``CA2``
  (``O`` primary, ``A`` secondary), ``CT`` (``T`` primary), ``CG`` (``G`` primary),
  ``CB`` (``O`` primary); ``NEW`` is a prospect nobody is assigned to;
* a quota per manager (``Q_A`` ...) that ended 10 days ago unmet (a ``quota_missed`` flag).

Roles: ``admin``, ``lead`` (sales_manager, subject ``L``), ``am`` (account_manager, subject
``A``), ``viewer``, ``service``, and the manager roles with a subject that is not a UUID
(``am_x``, ``lead_x``), which see nothing.

Scope is evaluated by Postgres at ``now()``, the start of the test's transaction, so every
assignment the world needs "now" starts a day earlier. Each write of the matrix runs inside
a savepoint that is rolled back afterwards, so every case sees the same world.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient, Response
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.config import Settings
from app.core.auth import Role
from tests.assertions import assert_problem
from tests.conftest import make_token
from tests.factories import create_assignment, create_client, create_manager

ROLES = ("admin", "lead", "am", "viewer", "service", "am_x", "lead_x")
READERS = frozenset({"admin", "viewer", "service"})
READ_ONLY = frozenset({"viewer", "service"})
US = timedelta(microseconds=1)
D = timedelta(days=1)
H = timedelta(hours=1)

# Which of the scoped roles may see each client / manager (admin, viewer, service see all).
CLIENT_SCOPE: dict[str, tuple[str, ...]] = {
    "CA": ("am",),
    "CA2": ("am",),
    "CT": ("lead",),
    "CG": ("lead",),
    "CB": (),
}
MANAGER_SCOPE: dict[str, tuple[str, ...]] = {
    "A": ("am",),
    "L": ("lead",),
    "T": ("lead",),
    "G": ("lead",),
    "O": (),
    "R": (),
}
# Who logs the world's interaction for each client (assigned to it now).
LOGGED_BY = {"CA": "A", "CA2": "A", "CT": "T", "CG": "G", "CB": "O"}


def iso(value: datetime) -> str:
    return value.isoformat()


async def db_now(conn: AsyncConnection) -> datetime:
    """The instant the scope queries see as now: the test transaction's ``now()``."""
    value = (await conn.execute(text("SELECT now()"))).scalar_one()
    assert isinstance(value, datetime)
    return value.astimezone(UTC)


@dataclass
class World:
    http: AsyncClient
    conn: AsyncConnection
    now: datetime
    ids: dict[str, str] = field(default_factory=dict)
    headers: dict[str, dict[str, str]] = field(default_factory=dict)

    def fill(self, value: Any) -> Any:
        """``value`` with ``{NAME}`` placeholders replaced by the world's ids and times."""
        if isinstance(value, str):
            return value.format(**self.ids)
        if isinstance(value, dict):
            return {k: self.fill(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.fill(v) for v in value]
        return value

    async def call(
        self, role: str, method: str, url: str, body: Any = None, params: Any = None
    ) -> Response:
        """One request as ``role``; a write runs in a savepoint rolled back afterwards."""
        headers = self.headers[role]
        url = self.fill(url)
        if method == "GET":
            return await self.http.get(url, headers=headers, params=params)
        savepoint = await self.conn.begin_nested()
        try:
            return await self.http.request(
                method, url, json=self.fill(body), headers=headers, params=params
            )
        finally:
            await savepoint.rollback()

    async def ids_of(self, role: str, url: str, **params: Any) -> set[str]:
        """Every id a list endpoint returns to ``role`` (one page of up to 500)."""
        response = await self.call(role, "GET", url, params={"limit": 500, **params})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["next_cursor"] is None
        return {item["id"] for item in body["items"]}

    def names(self, *names: str) -> set[str]:
        return {self.ids[n] for n in names}


async def _post(http: AsyncClient, url: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await http.post(url, json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def build_world(http: AsyncClient, conn: AsyncConnection, settings: Settings) -> World:
    """The managers, clients and records described in the module docstring (as admin)."""
    world = World(http=http, conn=conn, now=await db_now(conn))
    ids = world.ids
    now = world.now
    ids.update(
        past_1h=iso(now - H),
        past_1d=iso(now - D),
        future_10d=iso(now + 10 * D),
        future_20d=iso(now + 20 * D),
        future_21d=iso(now + 21 * D),
        future_30d=iso(now + 30 * D),
        future_60d=iso(now + 60 * D),
        year=str(now.year),
    )

    async def manager(name: str, **fields: Any) -> None:
        ids[name] = (await create_manager(http, full_name=f"Manager {name}", **fields))["id"]

    await manager("L", role="sales_manager")
    await manager("T", reports_to_id=ids["L"])
    await manager("G", reports_to_id=ids["T"])
    await manager("A")
    await manager("O")
    await manager("R", reports_to_id=ids["A"])
    await manager("SPARE_T", reports_to_id=ids["T"])
    await manager("SPARE_O")

    async def assign(name: str, client: str, manager: str, role: str, **times: str) -> None:
        times.setdefault("starts_at", ids["past_1d"])
        row = await create_assignment(http, ids[client], ids[manager], role, **times)
        ids[name] = row["id"]

    for key in CLIENT_SCOPE:
        ids[key] = (await create_client(http, name=f"Zeta {key}", lifecycle_stage="active"))["id"]
    ids["NEW"] = (await create_client(http, name="Zeta NEW", lifecycle_stage="prospect"))["id"]
    await assign("ASG_CA", "CA", "A", "primary")
    await assign("ASG_CA2", "CA2", "O", "primary")
    await assign("ASG_CA2_SEC", "CA2", "A", "secondary")
    await assign("ASG_CT", "CT", "T", "primary")
    await assign("ASG_CG", "CG", "G", "primary")
    await assign("ASG_CB", "CB", "O", "primary")
    await assign("FUT_T", "CT", "T", "secondary", starts_at=ids["future_10d"])
    await assign("FUT_O", "CB", "O", "secondary", starts_at=ids["future_10d"])

    for key, logger in LOGGED_BY.items():
        client_id = ids[key]
        interaction = await _post(
            http,
            "/v1/interactions",
            {
                "client_id": client_id,
                "manager_id": ids[logger],
                "channel": "phone",
                "direction": "outbound",
                "occurred_at": ids["past_1h"],
                "subject": "Call",
            },
        )
        ids[f"I_{key}"] = interaction["id"]
        complaint = await _post(
            http,
            "/v1/complaints",
            {
                "client_id": client_id,
                "title": "Broken",
                "category": "product",
                "severity": "critical",
            },
        )
        ids[f"K_{key}"] = complaint["id"]
        sale = await _post(
            http,
            "/v1/sales",
            {
                "client_id": client_id,
                "amount": {"amount": "100.00", "currency": "HUF"},
                "closed_at": ids["past_1h"],
                "kind": "new",
            },
        )
        ids[f"S_{key}"] = sale["id"]

    for name in MANAGER_SCOPE:
        quota = await _post(
            http,
            "/v1/quotas",
            {
                "manager_id": ids[name],
                "metric": "sales_amount",
                "period_start": iso(now - 40 * D),
                "period_end": iso(now - 10 * D),
                "target": {"amount": "1000.00", "currency": "EUR"},
            },
        )
        ids[f"Q_{name}"] = quota["id"]

    ids["FX"] = (
        await _post(
            http,
            "/v1/fx-rates",
            {"base": "EUR", "quote": "HUF", "rate": "400", "valid_on": "2020-01-01"},
        )
    )["id"]
    ids["SLA_SEG"] = (
        await _post(
            http,
            "/v1/sla-policies",
            {
                "severity": "low",
                "segment": "small",
                "first_response_hours": 10,
                "resolution_hours": 20,
            },
        )
    )["id"]
    ids["RUN"] = (await _post(http, "/v1/rule-runs", {}))["id"]

    response = await http.get("/v1/flags", params={"limit": 500})
    assert response.status_code == 200, response.text
    for flag in response.json()["items"]:
        if flag["rule_key"] == "open_complaints":
            (key,) = [k for k in CLIENT_SCOPE if ids[k] == flag["client_id"]]
            ids[f"F_{key}"] = flag["id"]
        elif flag["rule_key"] == "quota_missed":
            (name,) = [m for m in MANAGER_SCOPE if ids[f"Q_{m}"] == flag["quota_id"]]
            ids[f"QF_{name}"] = flag["id"]
    missing = [f"F_{k}" for k in CLIENT_SCOPE if f"F_{k}" not in ids]
    missing += [f"QF_{m}" for m in MANAGER_SCOPE if f"QF_{m}" not in ids]
    assert not missing, f"the rule run raised no flag for {missing}"

    world.headers = {
        role: {"Authorization": f"Bearer {token}"}
        for role, token in {
            "admin": make_token(settings, Role.admin, subject="test-admin"),
            "lead": make_token(settings, Role.sales_manager, subject=ids["L"]),
            "am": make_token(settings, Role.account_manager, subject=ids["A"]),
            "viewer": make_token(settings, Role.viewer),
            "service": make_token(settings, Role.service, subject="billing-service"),
            "am_x": make_token(settings, Role.account_manager, subject="not-a-uuid"),
            "lead_x": make_token(settings, Role.sales_manager, subject="lead@example.com"),
        }.items()
    }
    return world


@pytest.fixture
async def world(client: AsyncClient, connection: AsyncConnection, settings: Settings) -> World:
    return await build_world(client, connection, settings)


# --- Expected statuses ------------------------------------------------------------------


def reads(*scoped: str) -> dict[str, int]:
    """A read: everything for admin/viewer/service, else 200 only in scope (404 outside)."""
    return {r: 200 if r in READERS or r in scoped else 404 for r in ROLES}


def writes(ok: int, *scoped: str, hidden: int = 404) -> dict[str, int]:
    """A write any writer may make within their scope: viewer/service 403, ``hidden`` (404,
    or 422 for a reference in the body) out of scope."""
    return {
        r: ok if r == "admin" or r in scoped else 403 if r in READ_ONLY else hidden for r in ROLES
    }


def only(ok: int, *roles: str, **others: int) -> dict[str, int]:
    """``ok`` for ``roles`` (admin always), the statuses in ``others``, else 403."""
    allowed = {"admin", *roles}
    return {r: others.get(r, ok if r in allowed else 403) for r in ROLES}


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    url: str
    expect: dict[str, int]
    body: Any = None
    params: dict[str, Any] | None = None


# CA2 (A only secondary) and CG (a grand-report's client) are variants of CA and CT: a
# sample of the operations is enough for them.
VARIANT_OPERATIONS = (
    "get client",
    "patch client",
    "timeline of",
    "history of",
    "get interaction",
    "log interaction",
    "get complaint",
    "transition complaint",
    "get sale",
    "record sale",
    "get flag",
    "transition flag",
)


def client_cases() -> Iterable[Case]:
    """Clients and everything that belongs to them, for each client of the world."""
    for key, scope in CLIENT_SCOPE.items():
        for case in _cases_of_client(key, scope):
            if key in ("CA", "CT", "CB") or case.name.startswith(VARIANT_OPERATIONS):
                yield case


def _cases_of_client(key: str, scope: tuple[str, ...]) -> Iterable[Case]:
    logger = LOGGED_BY[key]
    parent = "CA" if key == "CB" else "CB"  # CB: in no manager role's scope
    yield Case(f"get client {key}", "GET", f"/v1/clients/{{{key}}}", reads(*scope))
    yield Case(
        f"patch client {key}",
        "PATCH",
        f"/v1/clients/{{{key}}}",
        writes(200, *scope),
        {"name": f"Zeta {key} renamed"},
    )
    yield Case(
        f"archive client {key}", "POST", f"/v1/clients/{{{key}}}/archive", writes(200, *scope)
    )
    yield Case(
        # A reference in the body to a client the caller cannot see: 422, as unknown.
        f"make {parent} the parent of {key}",
        "PATCH",
        f"/v1/clients/{{{key}}}",
        {**writes(200, *scope), **{r: 422 for r in scope}},
        {"parent_id": f"{{{parent}}}"},
    )
    yield Case(
        f"delete client {key} (has history: 409)",
        "DELETE",
        f"/v1/clients/{{{key}}}",
        writes(409, *scope),
    )
    for view in ("timeline", "health", "history", "responsible"):
        yield Case(f"{view} of {key}", "GET", f"/v1/clients/{{{key}}}/{view}", reads(*scope))
    yield Case(f"get interaction of {key}", "GET", f"/v1/interactions/{{I_{key}}}", reads(*scope))
    yield Case(
        f"patch interaction of {key}",
        "PATCH",
        f"/v1/interactions/{{I_{key}}}",
        writes(200, *scope),
        {"subject": "Call (edited)"},
    )
    yield Case(
        f"delete interaction of {key}",
        "DELETE",
        f"/v1/interactions/{{I_{key}}}",
        writes(204, *scope),
    )
    yield Case(
        f"log interaction for {key}",
        "POST",
        "/v1/interactions",
        writes(201, *scope, hidden=422),
        {
            "client_id": f"{{{key}}}",
            "manager_id": f"{{{logger}}}",
            "channel": "email",
            "direction": "inbound",
            "occurred_at": "{past_1h}",
            "subject": "Mail",
        },
    )
    yield Case(f"get complaint of {key}", "GET", f"/v1/complaints/{{K_{key}}}", reads(*scope))
    yield Case(
        f"complaint history of {key}",
        "GET",
        f"/v1/complaints/{{K_{key}}}/history",
        reads(*scope),
    )
    yield Case(
        f"patch complaint of {key}",
        "PATCH",
        f"/v1/complaints/{{K_{key}}}",
        writes(200, *scope),
        {"title": "Still broken"},
    )
    yield Case(
        f"transition complaint of {key}",
        "POST",
        f"/v1/complaints/{{K_{key}}}/transitions",
        writes(201, *scope),
        {"to": "acknowledged"},
    )
    yield Case(
        f"record complaint for {key}",
        "POST",
        "/v1/complaints",
        writes(201, *scope, hidden=422),
        {"client_id": f"{{{key}}}", "title": "New", "category": "billing", "severity": "low"},
    )
    yield Case(f"get sale of {key}", "GET", f"/v1/sales/{{S_{key}}}", reads(*scope))
    yield Case(
        f"patch sale of {key}",
        "PATCH",
        f"/v1/sales/{{S_{key}}}",
        writes(200, *scope),
        {"kind": "upsell"},
    )
    yield Case(f"delete sale of {key}", "DELETE", f"/v1/sales/{{S_{key}}}", writes(204, *scope))
    yield Case(
        f"record sale for {key}",
        "POST",
        "/v1/sales",
        writes(201, *scope, hidden=422),
        {
            "client_id": f"{{{key}}}",
            "amount": {"amount": "5.00", "currency": "HUF"},
            "closed_at": "{past_1h}",
            "kind": "upsell",
        },
    )
    yield Case(f"get flag of {key}", "GET", f"/v1/flags/{{F_{key}}}", reads(*scope))
    yield Case(f"flag history of {key}", "GET", f"/v1/flags/{{F_{key}}}/history", reads(*scope))
    yield Case(
        f"transition flag of {key}",
        "POST",
        f"/v1/flags/{{F_{key}}}/transitions",
        writes(201, *scope),
        {"to": "acknowledged"},
    )


def assignment_cases() -> Iterable[Case]:
    """Assignments (staffing: admin and sales_manager only), handovers, absences."""
    visible = {
        "ASG_CA": ("am",),
        "ASG_CA2": ("am",),  # O's, but of a client A is secondary for
        "ASG_CA2_SEC": ("am",),
        "ASG_CT": ("lead",),
        "ASG_CG": ("lead",),
        "ASG_CB": (),
        "FUT_T": ("lead",),
        "FUT_O": (),
    }
    for name, scope in visible.items():
        yield Case(f"get assignment {name}", "GET", f"/v1/assignments/{{{name}}}", reads(*scope))
        in_lead_scope = "lead" in scope
        yield Case(
            f"patch assignment {name}",
            "PATCH",
            f"/v1/assignments/{{{name}}}",
            only(200, "lead", lead=200 if in_lead_scope else 404, lead_x=404),
            {"reason": "Re-planned"},
        )
    for name in ("FUT_T", "FUT_O"):
        yield Case(
            f"delete future assignment {name}",
            "DELETE",
            f"/v1/assignments/{{{name}}}",
            only(204, lead=204 if name == "FUT_T" else 404, lead_x=404),
        )
    yield Case(
        "assign a team member to a new client",
        "POST",
        "/v1/assignments",
        only(201, "lead", lead_x=422),
        {"client_id": "{NEW}", "manager_id": "{T}", "role": "primary", "starts_at": "{past_1d}"},
    )
    yield Case(
        "assign an outsider",
        "POST",
        "/v1/assignments",
        only(201, lead=422, lead_x=422),
        {"client_id": "{CT}", "manager_id": "{O}", "role": "secondary", "starts_at": "{past_1d}"},
    )
    # A client in the path the caller cannot see is a 404 before the body is looked at,
    # as on every other /v1/clients/{id}/... and /v1/managers/{id}/... route.
    yield Case(
        "hand over a team client within the team",
        "POST",
        "/v1/clients/{CT}/handover",
        only(201, "lead", lead_x=404),
        {"to_manager_id": "{G}"},
    )
    yield Case(
        "hand over a team client to an outsider",
        "POST",
        "/v1/clients/{CT}/handover",
        only(201, lead=422, lead_x=404),
        {"to_manager_id": "{O}"},
    )
    yield Case(
        # The client and its current primary (O) are out of the lead's scope: taking it
        # over would end an assignment the lead cannot even read.
        "hand over another team's client to a team member",
        "POST",
        "/v1/clients/{CB}/handover",
        only(201, lead=404, lead_x=404),
        {"to_manager_id": "{T}"},
    )
    absence = {"starts_at": "{future_20d}", "ends_at": "{future_21d}"}
    yield Case(
        "absence of a team member covered by the team",
        "POST",
        "/v1/managers/{T}/absences",
        only(201, "lead", lead_x=404),
        {**absence, "cover_manager_id": "{G}"},
    )
    yield Case(
        "absence of a team member covered by an outsider",
        "POST",
        "/v1/managers/{T}/absences",
        only(201, lead=422, lead_x=404),
        {**absence, "cover_manager_id": "{O}"},
    )
    for absent in ("O", "A"):
        yield Case(
            f"absence of {absent} (not in the team)",
            "POST",
            f"/v1/managers/{{{absent}}}/absences",
            only(201, lead=404, lead_x=404),
            {**absence, "cover_manager_id": "{T}"},
        )


def manager_cases() -> Iterable[Case]:
    """Managers, books, roll-ups and quotas."""
    for name, scope in MANAGER_SCOPE.items():
        yield Case(f"get manager {name}", "GET", f"/v1/managers/{{{name}}}", reads(*scope))
        yield Case(f"book of {name}", "GET", f"/v1/managers/{{{name}}}/book", reads(*scope))
        yield Case(
            f"team attainment of {name}",
            "GET",
            f"/v1/managers/{{{name}}}/attainment",
            reads(*scope),
            params={"period": "FY{year}"},
        )
        yield Case(f"get quota of {name}", "GET", f"/v1/quotas/{{Q_{name}}}", reads(*scope))
        yield Case(
            f"attainment of {name}'s quota",
            "GET",
            f"/v1/quotas/{{Q_{name}}}/attainment",
            reads(*scope),
        )
        # A sales_manager sets the quotas of the people reporting to them, not their own
        # (403) and not outsiders' (403 on create; 404 for a quota they cannot see).
        reports = name in ("T", "G")
        lead_on_existing = 200 if reports else 403 if name == "L" else 404
        yield Case(
            f"patch quota of {name}",
            "PATCH",
            f"/v1/quotas/{{Q_{name}}}",
            only(200, lead=lead_on_existing, lead_x=404),
            {"target": {"amount": "2000.00", "currency": "EUR"}},
        )
        yield Case(
            f"delete quota of {name}",
            "DELETE",
            f"/v1/quotas/{{Q_{name}}}",
            only(204, lead=204 if reports else lead_on_existing, lead_x=404),
        )
        yield Case(
            f"set a quota for {name}",
            "POST",
            "/v1/quotas",
            only(201, lead=201 if reports else 403),
            {
                "manager_id": f"{{{name}}}",
                "metric": "interaction_count",
                "period_start": "{future_30d}",
                "period_end": "{future_60d}",
                "target_count": 10,
            },
        )
    for name in ("A", "T", "G", "O"):
        scope = MANAGER_SCOPE[name]
        yield Case(
            f"patch manager {name}",
            "PATCH",
            f"/v1/managers/{{{name}}}",
            only(200, lead=200 if "lead" in scope else 404, lead_x=404),
            {"region": "North"},
        )
    yield Case(
        "create a manager in the team",
        "POST",
        "/v1/managers",
        only(201, "lead", lead_x=422),
        {"email": "new.t@example.com", "full_name": "New", "reports_to_id": "{T}"},
    )
    yield Case(
        "create a manager reporting to an outsider",
        "POST",
        "/v1/managers",
        only(201, lead=422, lead_x=422),
        {"email": "new.o@example.com", "full_name": "New", "reports_to_id": "{O}"},
    )
    yield Case(
        "delete a manager of the team",
        "DELETE",
        "/v1/managers/{SPARE_T}",
        only(204, "lead", lead_x=404),
    )
    yield Case(
        "delete an outside manager",
        "DELETE",
        "/v1/managers/{SPARE_O}",
        only(204, lead=404, lead_x=404),
    )
    yield Case(
        "create a client",
        "POST",
        "/v1/clients",
        only(201, "lead", "lead_x"),
        {"name": "Fresh", "segment": "key", "country": "HU", "currency": "HUF"},
    )


EVERYONE_200 = dict.fromkeys(ROLES, 200)


def global_cases() -> Iterable[Case]:
    """Resources without a row-level scope: rules, runs, FX rates, SLA policies, audit."""
    yield Case("audit events", "GET", "/v1/audit-events", only(200))
    for url in (
        "/v1/rules",
        "/v1/rules/unassigned",
        "/v1/rules/unassigned/versions",
        "/v1/rule-runs",
        "/v1/rule-runs/{RUN}",
        "/v1/fx-rates",
        "/v1/fx-rates/{FX}",
        "/v1/sla-policies",
        "/v1/sla-policies/{SLA_SEG}",
    ):
        yield Case(f"read {url}", "GET", url, EVERYONE_200)
    yield Case("patch a rule", "PATCH", "/v1/rules/unassigned", only(200), {"severity": "low"})
    yield Case("run the rules", "POST", "/v1/rule-runs", only(201, "service"), {})
    yield Case("simulate", "POST", "/v1/rule-runs/simulate", only(200), {})
    yield Case(
        "publish an FX rate",
        "POST",
        "/v1/fx-rates",
        only(201, "lead", "lead_x", "service"),
        {"base": "EUR", "quote": "USD", "rate": "1.1", "valid_on": "2020-01-02"},
    )
    yield Case(
        "edit an FX rate (never: 409)",
        "PATCH",
        "/v1/fx-rates/{FX}",
        only(409, "lead", "lead_x", "service"),
    )
    yield Case(
        "add an SLA policy",
        "POST",
        "/v1/sla-policies",
        only(201),
        {"severity": "medium", "segment": "key", "first_response_hours": 2, "resolution_hours": 9},
    )
    yield Case(
        "patch an SLA policy",
        "PATCH",
        "/v1/sla-policies/{SLA_SEG}",
        only(200),
        {"first_response_hours": 5},
    )
    yield Case("delete an SLA policy", "DELETE", "/v1/sla-policies/{SLA_SEG}", only(204))


def report_cases() -> Iterable[Case]:
    """Reports read whatever is in the caller's scope; a manager named in the query that
    the caller cannot see is a 404 (the rows themselves: ``TestReports``)."""
    yield Case("account status report", "GET", "/v1/reports/account-status", EVERYONE_200)
    yield Case(
        "account status of the lead's team",
        "GET",
        "/v1/reports/account-status",
        reads("lead"),
        params={"manager_id": "{T}", "include_team": "true"},
    )
    yield Case(
        "account status of an outsider",
        "GET",
        "/v1/reports/account-status",
        reads(),
        params={"manager_id": "{O}"},
    )
    yield Case(
        "quota attainment report",
        "GET",
        "/v1/reports/quota-attainment",
        EVERYONE_200,
        params={"period": "FY{year}"},
    )
    yield Case(
        "quota attainment of an outsider",
        "GET",
        "/v1/reports/quota-attainment",
        reads(),
        params={"period": "FY{year}", "manager_id": "{O}"},
    )
    yield Case("complaints report", "GET", "/v1/reports/complaints", EVERYONE_200)
    yield Case(
        "import a file (admin only)",
        "POST",
        "/v1/imports",
        # admin passes the role check and fails on the (JSON, not multipart) body
        only(422),
        {"resource": "managers"},
    )
    yield Case(
        "read an import job (admin only)",
        "GET",
        f"/v1/imports/{uuid.UUID(int=0)}",
        only(404),
    )


MATRIX: dict[str, list[Case]] = {
    "clients": list(client_cases()),
    "assignments": list(assignment_cases()),
    "managers": list(manager_cases()),
    "global": list(global_cases()),
    "reports": list(report_cases()),
}


class TestMatrix:
    """Roles × resources × operations → the expected status (one subtest per operation,
    comparing the statuses of every role at once)."""

    @pytest.mark.parametrize("group", list(MATRIX))
    async def test_matrix(self, world: World, subtests: pytest.Subtests, group: str) -> None:
        for case in MATRIX[group]:
            with subtests.test(case=case.name):
                wrong: dict[str, str] = {}
                for role in ROLES:
                    response = await world.call(
                        role, case.method, case.url, case.body, params=world.fill(case.params)
                    )
                    status, expected = response.status_code, case.expect[role]
                    if status != expected:
                        wrong[role] = f"{status} (expected {expected})"
                    elif status >= 400 and not response.headers["content-type"].startswith(
                        "application/problem+json"
                    ):
                        wrong[role] = f"{status} is not problem+json"
                assert not wrong, f"{case.method} {case.url}: {wrong}"


def _matrix_is_complete() -> None:
    """Every case names every role (a typo in a role name would silently drop a check)."""
    for cases in MATRIX.values():
        for case in cases:
            assert set(case.expect) == set(ROLES), case.name


_matrix_is_complete()


class TestLists:
    """Every list returns exactly the rows in the caller's scope (out-of-scope rows are
    simply absent), checked against the world's known ids."""

    async def test_lists_hold_exactly_the_scope(
        self, world: World, subtests: pytest.Subtests
    ) -> None:
        def per_client(prefix: str, keys: Iterable[str]) -> set[str]:
            return world.names(*(f"{prefix}{k}" for k in keys))

        am_clients, lead_clients = ("CA", "CA2"), ("CT", "CG")
        expected: dict[tuple[str, str], dict[str, set[str]]] = {
            ("/v1/clients", ""): {
                "am": world.names(*am_clients),
                "lead": world.names(*lead_clients),
            },
            ("/v1/clients", "q=zeta"): {
                "am": world.names(*am_clients),
                "lead": world.names(*lead_clients),
            },
            ("/v1/interactions", ""): {
                "am": per_client("I_", am_clients),
                "lead": per_client("I_", lead_clients),
            },
            ("/v1/complaints", ""): {
                "am": per_client("K_", am_clients),
                "lead": per_client("K_", lead_clients),
            },
            ("/v1/sales", ""): {
                "am": per_client("S_", am_clients),
                "lead": per_client("S_", lead_clients),
            },
            ("/v1/flags", ""): {
                "am": per_client("F_", am_clients) | world.names("QF_A"),
                "lead": per_client("F_", lead_clients) | world.names("QF_L", "QF_T", "QF_G"),
            },
            ("/v1/assignments", ""): {
                # The clients' assignments, whoever holds them, and the caller's (team's).
                "am": world.names("ASG_CA", "ASG_CA2", "ASG_CA2_SEC"),
                "lead": world.names("ASG_CT", "ASG_CG", "FUT_T"),
            },
            ("/v1/quotas", ""): {
                "am": world.names("Q_A"),
                "lead": world.names("Q_L", "Q_T", "Q_G"),
            },
            ("/v1/managers", ""): {
                "am": world.names("A"),  # not R, who reports to A: only sales_manager has a team
                "lead": world.names("L", "T", "G", "SPARE_T"),
            },
            # Filters naming out-of-scope rows narrow the scope; they never widen it.
            ("/v1/interactions", "client_id={CB}"): {"am": set(), "lead": set()},
            ("/v1/assignments", "manager_id={O}"): {
                "am": world.names("ASG_CA2"),  # O's assignment of a client A shares
                "lead": set(),
            },
            ("/v1/flags", "manager_id={O}"): {
                "am": world.names("F_CA2"),  # O is responsible for CA2, which A may see
                "lead": set(),
            },
            ("/v1/quotas", "manager_id={O}"): {"am": set(), "lead": set()},
            ("/v1/managers", "reports_to_id={A}"): {"am": set(), "lead": set()},
            ("/v1/sales", "credited_manager_id={O}"): {
                "am": world.names("S_CA2"),
                "lead": set(),
            },
        }
        for (url, query), by_role in expected.items():
            params = dict(p.split("=") for p in world.fill(query).split("&") if p)
            with subtests.test(url=url, query=query):
                actual = {role: await world.ids_of(role, url, **params) for role in by_role}
                assert actual == by_role
                for role in ("am_x", "lead_x"):
                    assert await world.ids_of(role, url, **params) == set(), role
                everything = await world.ids_of("admin", url, **params)
                assert set().union(*by_role.values()) <= everything

    async def test_database_count_and_hidden_404(self, world: World) -> None:
        """A DB count: the account manager's client list is exactly the clients with an
        assignment of theirs (any role) whose period contains now(). And the 404 for a
        client the caller may not see is the 404 of a client that does not exist."""
        rows = await world.conn.execute(
            text(
                "SELECT DISTINCT client_id::text FROM assignments"
                " WHERE manager_id = :m AND period @> now()"
            ),
            {"m": world.ids["A"]},
        )
        in_db = {r[0] for r in rows}
        assert await world.ids_of("am", "/v1/clients") == in_db == world.names("CA", "CA2")

        missing = str(uuid.uuid4())
        hidden = await world.call("am", "GET", "/v1/clients/{CB}")
        absent = await world.call("am", "GET", f"/v1/clients/{missing}")
        hidden_body, absent_body = assert_problem(hidden, 404), assert_problem(absent, 404)
        assert hidden_body == {
            k: v.replace(missing, world.ids["CB"]) if isinstance(v, str) else v
            for k, v in absent_body.items()
        }


async def _set_up_book(world: World) -> None:
    """Extra clients of A: ``CA3`` (A primary, O covering now), ``CC`` (O primary, A
    covering now), ``CX`` (A was primary until 10 days ago), ``CF`` (A secondary from
    tomorrow)."""
    http, ids, now = world.http, world.ids, world.now
    for key in ("CA3", "CC", "CX", "CF"):
        ids[key] = (await create_client(http, name=f"Book {key}"))["id"]
    week = 7 * D
    await create_assignment(http, ids["CA3"], ids["A"], "primary", iso(now - week))
    await create_assignment(http, ids["CA3"], ids["O"], "cover", iso(now - D), iso(now + D))
    await create_assignment(http, ids["CC"], ids["O"], "primary", iso(now - week))
    await create_assignment(http, ids["CC"], ids["A"], "cover", iso(now - D), iso(now + D))
    await create_assignment(
        http, ids["CX"], ids["A"], "primary", iso(now - 30 * D), iso(now - 10 * D)
    )
    await create_assignment(http, ids["CF"], ids["A"], "secondary", iso(now + D))


class TestReports:
    """The reports hold exactly the caller's scope, like the lists."""

    async def test_rows_are_the_callers_scope(
        self, world: World, subtests: pytest.Subtests
    ) -> None:
        month = (world.now + 40 * D).strftime("%Y-%m")
        for name in MANAGER_SCOPE:
            quota = await _post(
                world.http,
                "/v1/quotas",
                {
                    "manager_id": world.ids[name],
                    "metric": "interaction_count",
                    "period": month,
                    "target_count": 5,
                },
            )
            world.ids[f"MQ_{name}"] = quota["id"]
        expected = {
            "am": (("CA", "CA2"), ("A",), set[str]()),
            "lead": (("CT", "CG"), ("L", "T", "G"), world.names("L", "T")),
            "am_x": ((), (), set()),
            "lead_x": ((), (), set()),
            "admin": (tuple(CLIENT_SCOPE) + ("NEW",), tuple(MANAGER_SCOPE), None),
        }
        for role, (clients, quota_owners, leads) in expected.items():
            with subtests.test(role=role):
                status = await world.call(
                    role, "GET", "/v1/reports/account-status", params={"limit": 500}
                )
                assert status.status_code == 200, status.text
                listed = {row["client_id"] for row in status.json()["items"]}
                assert listed == world.names(*clients)

                quotas = await world.call(
                    role, "GET", "/v1/reports/quota-attainment", params={"period": month}
                )
                assert quotas.status_code == 200, quotas.text
                report = quotas.json()
                assert {q["quota_id"] for q in report["quotas"]} == world.names(
                    *(f"MQ_{m}" for m in quota_owners)
                )
                if leads is not None:
                    assert {t["lead_id"] for t in report["teams"]} == leads

                complaints = await world.call(role, "GET", "/v1/reports/complaints")
                assert complaints.status_code == 200, complaints.text
                assert complaints.json()["total"] == len([k for k in clients if k in CLIENT_SCOPE])


class TestBookOfBusiness:
    async def test_client_list_is_the_book_plus_the_other_current_assignments(
        self, world: World
    ) -> None:
        """``GET /v1/managers/{me}/book`` lists the clients the manager is *responsible*
        for (an active cover, or an active primary nobody covers); the client list holds
        every client with *any* current assignment of theirs. So, for an account manager:
        list = book ∪ secondaries ∪ primaries covered by someone else, and book ⊆ list."""
        await _set_up_book(world)
        listed = await world.ids_of("am", "/v1/clients")
        response = await world.call("am", "GET", "/v1/managers/{A}/book", params={"limit": 500})
        assert response.status_code == 200, response.text
        book = {entry["client"]["id"] for entry in response.json()["items"]}
        roles = {entry["client"]["id"]: entry["role"] for entry in response.json()["items"]}

        assert listed == world.names("CA", "CA2", "CA3", "CC")
        assert book == world.names("CA", "CC")
        assert roles == {world.ids["CA"]: "primary", world.ids["CC"]: "cover"}
        assert book <= listed
        # The difference: a secondary assignment, and a primary while O covers it.
        assert listed - book == world.names("CA2", "CA3")
        rows = await world.conn.execute(
            text(
                "SELECT client_id::text, role FROM assignments"
                " WHERE manager_id = :m AND period @> now()"
            ),
            {"m": world.ids["A"]},
        )
        current = {r[0]: r[1] for r in rows}
        assert set(current) == listed
        assert current[world.ids["CA2"]] == "secondary"

    async def test_a_past_book_shows_no_client_out_of_scope(self, world: World) -> None:
        """The book as of a past date must apply the caller's scope too (issue 7: lists,
        book of business... all apply the same scope): CX, which A held until 10 days
        ago, is a 404 for A now and must not appear in A's book as of 20 days ago."""
        await _set_up_book(world)
        assert (await world.call("am", "GET", "/v1/clients/{CX}")).status_code == 404
        as_of = iso(world.now - 20 * D)
        response = await world.call(
            "am", "GET", "/v1/managers/{A}/book", params={"as_of": as_of, "limit": 500}
        )
        assert response.status_code == 200, response.text
        book = {entry["client"]["id"] for entry in response.json()["items"]}
        assert world.ids["CX"] not in book
        # (admin sees A's book of that day as it was)
        response = await world.call(
            "admin", "GET", "/v1/managers/{A}/book", params={"as_of": as_of, "limit": 500}
        )
        assert world.ids["CX"] in {e["client"]["id"] for e in response.json()["items"]}


class TestAttainmentScope:
    async def test_account_manager_roll_up_holds_only_their_own_quotas(self, world: World) -> None:
        """R reports to A, but an account manager has no team in scope (GET R is a 404),
        so A's roll-up must not show R's quota; a sales_manager's roll-up holds the team
        below them."""
        month = (world.now + 40 * D).strftime("%Y-%m")
        for name in ("A", "R", "T", "G"):
            await _post(
                world.http,
                "/v1/quotas",
                {
                    "manager_id": world.ids[name],
                    "metric": "interaction_count",
                    "period": month,
                    "target_count": 5,
                },
            )
        assert (await world.call("am", "GET", "/v1/managers/{R}")).status_code == 404

        async def members(role: str, manager: str) -> set[str]:
            response = await world.call(
                role, "GET", f"/v1/managers/{{{manager}}}/attainment", params={"period": month}
            )
            assert response.status_code == 200, response.text
            return {m["manager_id"] for m in response.json()["members"]}

        assert await members("lead", "T") == world.names("T", "G")
        assert await members("admin", "A") == world.names("A", "R")
        assert await members("am", "A") == world.names("A")


class TestCoverWindows:
    """A cover's access starts at its ``starts_at`` (inclusive) and ends at its ``ends_at``
    (exclusive), as Postgres sees now(): windows placed around the transaction's now()
    (to the microsecond) stand in for waiting."""

    WINDOWS: dict[str, tuple[timedelta | None, timedelta | None, bool]] = {
        # name: (starts_at - now, ends_at - now, has access now)
        "running": (-timedelta(minutes=1), timedelta(minutes=1), True),
        "starts exactly now": (timedelta(0), timedelta(minutes=1), True),
        "starts 1 µs from now": (US, timedelta(minutes=1), False),
        "ends exactly now": (-timedelta(minutes=1), timedelta(0), False),
        "ends 1 µs from now": (-timedelta(minutes=1), US, True),
        "ended an hour ago": (-2 * H, -H, False),
        "starts in an hour": (H, 2 * H, False),
        "open-ended": (-timedelta(minutes=1), None, True),
    }

    async def test_cover_assignments(
        self,
        client: AsyncClient,
        connection: AsyncConnection,
        settings: Settings,
        subtests: pytest.Subtests,
    ) -> None:
        now = await db_now(connection)
        primary = (await create_manager(client))["id"]
        cover = (await create_manager(client))["id"]
        headers = {
            "Authorization": f"Bearer {make_token(settings, Role.account_manager, subject=cover)}"
        }
        clients: dict[str, str] = {}
        for name, (start, end, _) in self.WINDOWS.items():
            clients[name] = (await create_client(client, name=f"Window {name}"))["id"]
            await create_assignment(client, clients[name], primary, "primary", iso(now - D))
            await create_assignment(
                client,
                clients[name],
                cover,
                "cover",
                iso(now + start) if start is not None else None,
                iso(now + end) if end is not None else None,
            )
        listed = {
            c["id"] for c in (await client.get("/v1/clients", headers=headers)).json()["items"]
        }
        assert listed == {clients[n] for n, (_, _, access) in self.WINDOWS.items() if access}
        for name, (_, _, access) in self.WINDOWS.items():
            with subtests.test(window=name):
                url = f"/v1/clients/{clients[name]}"
                assert (await client.get(url, headers=headers)).status_code == (
                    200 if access else 404
                )
                savepoint = await connection.begin_nested()
                patched = await client.patch(url, json={"segment": "key"}, headers=headers)
                await savepoint.rollback()
                assert patched.status_code == (200 if access else 404), patched.text

    async def test_absence_covers(
        self,
        client: AsyncClient,
        connection: AsyncConnection,
        settings: Settings,
        subtests: pytest.Subtests,
    ) -> None:
        """The same through ``POST /v1/managers/{id}/absences``: one absent manager per
        window, each primary for one client, all covered by one colleague."""
        now = await db_now(connection)
        cover = (await create_manager(client))["id"]
        headers = {
            "Authorization": f"Bearer {make_token(settings, Role.account_manager, subject=cover)}"
        }
        windows = {
            "running": (-timedelta(minutes=1), timedelta(minutes=1), True),
            "starts exactly now": (timedelta(0), H, True),
            "starts 1 µs from now": (US, H, False),
            "ends exactly now": (-H, timedelta(0), False),
            "ended an hour ago": (-2 * H, -H, False),
            "starts in an hour": (H, 2 * H, False),
        }
        clients: dict[str, str] = {}
        for name, (start, end, _) in windows.items():
            absent = (await create_manager(client))["id"]
            clients[name] = (await create_client(client, name=f"Absence {name}"))["id"]
            await create_assignment(client, clients[name], absent, "primary", iso(now - D))
            response = await client.post(
                f"/v1/managers/{absent}/absences",
                json={
                    "starts_at": iso(now + start),
                    "ends_at": iso(now + end),
                    "cover_manager_id": cover,
                },
            )
            assert response.status_code == 201, response.text
            (covering,) = response.json()["assignments"]
            assert covering["client_id"] == clients[name]
            assert covering["manager_id"] == cover
        listed = {
            c["id"] for c in (await client.get("/v1/clients", headers=headers)).json()["items"]
        }
        assert listed == {clients[n] for n, (_, _, access) in windows.items() if access}
        for name, (_, _, access) in windows.items():
            with subtests.test(window=name):
                response = await client.get(f"/v1/clients/{clients[name]}", headers=headers)
                assert response.status_code == (200 if access else 404)


class TestRoleUnion:
    async def test_read_role_does_not_widen_what_an_account_manager_may_write(
        self, world: World, settings: Settings, subtests: pytest.Subtests
    ) -> None:
        """A manager role keeps its scope even with viewer or service as well (the scope is
        one per caller, used for reads and writes alike), so a reader role never lets an
        account manager write to, or read, a client they are not assigned to."""
        for extra in (Role.viewer, Role.service):
            with subtests.test(roles=f"account_manager+{extra.value}"):
                token = make_token(settings, Role.account_manager, extra, subject=world.ids["A"])
                world.headers["am+read"] = {"Authorization": f"Bearer {token}"}
                assert (await world.call("am+read", "GET", "/v1/clients/{CB}")).status_code == 404
                own = await world.call("am+read", "PATCH", "/v1/clients/{CA}", {"segment": "key"})
                assert own.status_code == 200, own.text
                other = await world.call("am+read", "PATCH", "/v1/clients/{CB}", {"name": "Stolen"})
                assert other.status_code in (403, 404), other.text
                complaint = await world.call(
                    "am+read", "POST", "/v1/complaints/{K_CB}/transitions", {"to": "acknowledged"}
                )
                assert complaint.status_code in (403, 404), complaint.text
