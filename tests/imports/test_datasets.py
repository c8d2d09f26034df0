"""The public data-set loaders (issue 8, tests item): the CRM Sales Opportunities set and
the CFPB complaints sample, loaded through the importer and checked through the API
against figures computed here from the original CSV files.

Both sets are read from ``../shared/data`` next to the repository (never copied into
it); the module is skipped when that folder is missing. They are loaded once for the
module with real commits (``load_dataset`` on the real sessionmaker), read through an
HTTP client on an app bound to the same engine, and every table they filled is
truncated afterwards (not ``audit_events``, which refuses it, nor the seeded
``sla_policies``, ``rules`` and ``rule_versions``).
"""

from __future__ import annotations

import csv
import statistics
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from httpx import ASGITransport, AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.core.auth import Role
from app.core.db import create_sessionmaker
from app.imports.service import load_dataset
from app.main import create_app
from app.models import Base
from tests.conftest import SEEDED_TABLES, make_token
from tests.factories import count_rows

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
CRM = DATA / "crm_sales_opportunities"
CFPB = DATA / "cfpb_complaints_sample"

pytestmark = pytest.mark.skipif(
    not (CRM.is_dir() and (CFPB / "complaints_sample.csv").is_file()),
    reason=f"public data sets not found in {DATA} (expected ../shared/data next to the repo)",
)

AS_OF = "2017-12-31T00:00:00Z"
# README: no_recent_contact thresholds (days) per segment, defaults.
CONTACT_DAYS = {"strategic": 30, "key": 30, "enterprise": 45, "mid_market": 90, "small": 90}
TABLES = ("managers", "clients", "assignments", "sales", "interactions", "quotas", "complaints")


def read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8-sig") as source:
        return list(csv.DictReader(source))


def quarter_of(day: str) -> tuple[int, int]:
    parsed = date.fromisoformat(day)
    return parsed.year, (parsed.month - 1) // 3 + 1


def segment_of(revenue_millions: str) -> str:
    """Issue 8's mapping of annual revenue (USD millions) to a segment."""
    revenue = float(revenue_millions or 0)
    for floor, segment in ((5000, "strategic"), (1000, "key"), (500, "enterprise")):
        if revenue >= floor:
            return segment
    return "mid_market" if revenue >= 100 else "small"


@dataclass(frozen=True)
class Source:
    """The original CSV files, and sums over them."""

    deals: list[dict[str, str]]
    teams: list[dict[str, str]]
    accounts: list[dict[str, str]]
    complaints: list[dict[str, str]]

    @property
    def won(self) -> list[dict[str, str]]:
        return [d for d in self.deals if d["deal_stage"] == "Won"]

    def won_in(
        self, quarter: int, *, agent: str | None = None, lead: str | None = None
    ) -> list[dict[str, str]]:
        """Won deals closing in 2017-Q``quarter`` (by an agent, or a lead's team)."""
        lead_of = {t["sales_agent"]: t["manager"] for t in self.teams}
        return [
            d
            for d in self.won
            if quarter_of(d["close_date"]) == (2017, quarter)
            and (agent is None or d["sales_agent"] == agent)
            and (lead is None or lead_of[d["sales_agent"]] == lead)
        ]

    def target(self, agent: str, quarter: int) -> int:
        """Issue 8's quota: the median quarterly won value of the agent's region."""
        region = {t["sales_agent"]: t["regional_office"] for t in self.teams}
        totals: dict[str, int] = defaultdict(int)
        for deal in self.won_in(quarter):
            totals[deal["sales_agent"]] += int(deal["close_value"])
        members = [a for a, r in region.items() if r == region[agent]]
        return round(statistics.median(totals[a] for a in members))


def value(deals: list[dict[str, str]]) -> int:
    return sum(int(d["close_value"]) for d in deals)


def money(amount: Any) -> Decimal:
    return Decimal(str(amount))


@pytest.fixture(scope="module")
def source() -> Source:
    return Source(
        deals=read(CRM / "sales_pipeline.csv"),
        teams=read(CRM / "sales_teams.csv"),
        accounts=read(CRM / "accounts.csv"),
        complaints=read(CFPB / "complaints_sample.csv"),
    )


async def truncate(engine: AsyncEngine) -> None:
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables if t.name not in SEEDED_TABLES)
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {tables} CASCADE"))


@pytest.fixture(scope="module")
async def loaded(engine: AsyncEngine, settings: Settings) -> AsyncIterator[dict[str, Any]]:
    """Both data sets, loaded once and committed; truncated at the end of the module."""
    await truncate(engine)
    sessionmaker = create_sessionmaker(engine)
    try:
        yield {
            "crm": await load_dataset(sessionmaker, settings, "crm-sales", CRM),
            "cfpb": await load_dataset(sessionmaker, settings, "cfpb-complaints", CFPB),
        }
    finally:
        await truncate(engine)


@pytest.fixture(scope="module")
async def http(
    loaded: dict[str, Any], engine: AsyncEngine, settings: Settings
) -> AsyncIterator[AsyncClient]:
    """An admin client on an app bound to the real (committing) sessionmaker."""
    application = create_app(settings)
    application.state.engine = engine
    application.state.sessionmaker = create_sessionmaker(engine)
    token = make_token(settings, Role.admin, subject="test-datasets")
    async with AsyncClient(
        transport=ASGITransport(app=application),
        base_url="http://test",
        headers={"Authorization": f"Bearer {token}"},
    ) as client:
        yield client


@pytest.fixture(scope="module")
async def rule_run(http: AsyncClient) -> dict[str, Any]:
    """One rule run at the end of 2017."""
    response = await http.post("/v1/rule-runs", json={"as_of": AS_OF})
    assert response.status_code == 201, response.text
    return dict(response.json())


async def every(http: AsyncClient, path: str, **params: Any) -> list[dict[str, Any]]:
    """All items of a list endpoint, page by page."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {"limit": 500, **params, **({"cursor": cursor} if cursor else {})}
        response = await http.get(path, params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items


async def manager_id(http: AsyncClient, name: str) -> str:
    found = [m for m in await every(http, "/v1/managers", q=name) if m["full_name"] == name]
    assert len(found) == 1, (name, found)
    return str(found[0]["id"])


async def client_id(http: AsyncClient, name: str) -> str:
    found = [c for c in await every(http, "/v1/clients", q=name) if c["name"] == name]
    assert len(found) == 1, (name, found)
    return str(found[0]["id"])


async def team(http: AsyncClient, lead: str, period: str) -> dict[str, Any]:
    response = await http.get(
        f"/v1/managers/{await manager_id(http, lead)}/attainment",
        params={"period": period, "currency": "USD", "as_of": "2018-01-01"},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def counted(http: AsyncClient, quota_id: str) -> set[str]:
    """Ids of the sales a quota counted, after its period (as_of 2018-01-01)."""
    response = await http.get(
        f"/v1/quotas/{quota_id}/attainment", params={"as_of": "2018-01-01", "limit": 500}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["next_cursor"] is None
    return {r["id"] for r in body["records"]}


def sales_total(body: dict[str, Any]) -> Decimal:
    (totals,) = [t for t in body["totals"] if t["metric"] == "sales_amount"]
    assert totals["unit"] == "USD"
    return money(totals["achieved"])


# --- The CRM set: what the loader reported ------------------------------------------


def test_crm_reports(loaded: dict[str, Any], source: Source) -> None:
    imports = loaded["crm"]["imports"]
    assert list(imports) == [
        "managers",
        "clients",
        "assignments",
        "sales",
        "interactions",
        "quotas",
    ]
    leads = {t["manager"] for t in source.teams}
    expected = {
        "managers": len(leads) + len(source.teams),
        "clients": len(source.accounts),
        "sales": len(source.won),
        "quotas": 4 * len(source.teams),
    }
    for resource, count in expected.items():
        report = imports[resource]
        assert (report["created"], report["rejected"]) == (count, 0), (resource, report)
    assert imports["assignments"]["rejected"] == 0
    assert imports["assignments"]["created"] > 0


def test_deals_without_an_account_are_rejected_rows_not_a_crash(
    loaded: dict[str, Any], source: Source
) -> None:
    """Engaged deals with a blank account have no client: each engagement is a rejected
    interaction row whose reason names the source file (not "client_ref is required",
    a column of the loader's temporary file); the rest go in."""
    engaged = [d for d in source.deals if d["engage_date"]]
    blank = [d for d in engaged if not d["account"]]
    assert blank
    assert not [d for d in source.won if not d["account"]]
    report = loaded["crm"]["imports"]["interactions"]
    assert report["rows"] == len(engaged)
    assert report["rejected"] == len(blank)
    assert report["created"] == len(engaged) - len(blank)
    assert report["rejections_truncated"] == (len(blank) > 1000)
    assert {r["reason"] for r in report["rejections"]} == {
        "the deal has a blank account in sales_pipeline.csv"
    }
    reported = [r["external_ref"] for r in report["rejections"]]
    assert reported == [f"crm-engage-{d['opportunity_id']}" for d in blank][: len(reported)]
    assert len(reported) == min(len(blank), 1000)


def test_loader_warnings(loaded: dict[str, Any], source: Source) -> None:
    """Misspelt countries, the typo'd sector and the product outside the catalogue are
    warnings, and their rows still go in."""
    warnings = loaded["crm"]["warnings"]
    gtxpro = sum(1 for d in source.won if d["product"] == "GTXPro")
    assert gtxpro > 0
    assert (
        f"product 'GTXPro' is not in products.csv ({gtxpro} won deals); kept as written"
    ) in warnings
    assert "account Bioholding: office_location 'Philipines' read as 'Philippines'" in warnings
    assert "account Hottechi: office_location 'Korea' read as KR" in warnings
    technolgy = sorted(a["account"] for a in source.accounts if a["sector"] == "technolgy")
    assert [w for w in warnings if "technolgy" in w] == [
        f"account {name}: sector 'technolgy' read as 'technology'" for name in technolgy
    ]


async def test_misspelt_countries_and_unknown_product_are_loaded(
    http: AsyncClient, engine: AsyncEngine, source: Source
) -> None:
    clients = {c["name"]: c for c in await every(http, "/v1/clients")}
    assert clients["Bioholding"]["country"] == "PH"
    assert clients["Hottechi"]["country"] == "KR"
    assert clients["Acme Corporation"]["industry"] == "technology"
    async with engine.connect() as conn:
        stored = (
            await conn.execute(text("SELECT count(*) FROM sales WHERE product = 'GTXPro'"))
        ).scalar_one()
    assert stored == sum(1 for d in source.won if d["product"] == "GTXPro")


# --- The CRM set: sales, quarters, attainment -----------------------------------------


async def test_total_won(http: AsyncClient, source: Source) -> None:
    sales = await every(http, "/v1/sales")
    assert len(sales) == len(source.won) == 4238
    assert {s["amount"]["currency"] for s in sales} == {"USD"}
    total = sum(money(s["amount"]["amount"]) for s in sales)
    assert total == value(source.won) == 10_005_534


@pytest.mark.parametrize(
    ("day", "count", "total"),
    [("2017-03-31", 16, 24_139), ("2017-04-01", 8, 18_284)],
)
async def test_deals_on_the_quarter_boundary(
    http: AsyncClient, source: Source, day: str, count: int, total: int
) -> None:
    """A close date is 00:00 of that day in the organisation's zone (UTC)."""
    on_day = [d for d in source.won if d["close_date"] == day]
    assert (len(on_day), value(on_day)) == (count, total)
    start = datetime.fromisoformat(day).replace(tzinfo=UTC)
    sales = await every(
        http,
        "/v1/sales",
        closed_from=start.isoformat(),
        closed_to=(start + timedelta(days=1)).isoformat(),
    )
    assert len(sales) == count
    assert sum(money(s["amount"]["amount"]) for s in sales) == total
    assert {s["external_ref"] for s in sales} == {f"crm-deal-{d['opportunity_id']}" for d in on_day}

    # Each of them counts toward its agent's quota of that quarter, not the other one.
    quarter = quarter_of(day)[1]
    other = {1: 2, 2: 1}[quarter]
    for sale in sales:
        quotas = {
            q["period"]: q["id"]
            for q in await every(http, "/v1/quotas", manager_id=sale["credited_manager_id"])
        }
        assert sale["id"] in await counted(http, quotas[f"FY2017-Q{quarter}"]), sale
        assert sale["id"] not in await counted(http, quotas[f"FY2017-Q{other}"]), sale


async def test_quarter_boundaries_in_sales_and_team_rollups(
    http: AsyncClient, source: Source
) -> None:
    """2017-03-31 counts in Q1 and 2017-04-01 in Q2: per quarter, the sales list between
    the quarter's bounds and the sum of all team roll-ups equal the CSV's totals."""
    leads = sorted({t["manager"] for t in source.teams})
    for quarter, (start, end) in {
        1: ("2017-01-01", "2017-04-01"),
        2: ("2017-04-01", "2017-07-01"),
    }.items():
        expected = source.won_in(quarter)
        sales = await every(
            http,
            "/v1/sales",
            closed_from=f"{start}T00:00:00Z",
            closed_to=f"{end}T00:00:00Z",
        )
        assert len(sales) == len(expected), quarter
        assert sum(money(s["amount"]["amount"]) for s in sales) == value(expected), quarter
        rolled = [sales_total(await team(http, lead, f"FY2017-Q{quarter}")) for lead in leads]
        assert sum(rolled) == value(expected), quarter
    assert "2017-03-31" in {d["close_date"] for d in source.won_in(1)}
    assert "2017-04-01" in {d["close_date"] for d in source.won_in(2)}


@pytest.mark.parametrize(
    ("lead", "quarter", "achieved"),
    [("Melvin Marxen", 3, 767_754), ("Cara Losch", 1, 117_389)],
)
async def test_team_attainment(
    http: AsyncClient, source: Source, lead: str, quarter: int, achieved: int
) -> None:
    assert value(source.won_in(quarter, lead=lead)) == achieved
    body = await team(http, lead, f"FY2017-Q{quarter}")
    assert body["currency"] == "USD"
    assert body["period_start"].startswith(f"2017-{3 * quarter - 2:02d}-01T00:00:00")
    assert sales_total(body) == achieved
    agents = [t["sales_agent"] for t in source.teams if t["manager"] == lead]
    (totals,) = body["totals"]
    assert totals["quotas"] == len(agents)
    assert money(totals["target"]) == sum(source.target(a, quarter) for a in agents)
    assert {m["depth"] for m in body["members"]} == {1}


async def test_agent_quota_counts_his_won_deals(http: AsyncClient, source: Source) -> None:
    """Moses Frase: 15 won deals worth 16,112 USD in 2017-Q1, the records that counted."""
    deals = source.won_in(1, agent="Moses Frase")
    assert (len(deals), value(deals)) == (15, 16_112)
    moses = await manager_id(http, "Moses Frase")
    (quota,) = await every(http, "/v1/quotas", manager_id=moses, active_at="2017-02-15T00:00:00Z")
    assert quota["period"] == "FY2017-Q1"
    assert money(quota["target"]["amount"]) == source.target("Moses Frase", 1)
    response = await http.get(
        f"/v1/quotas/{quota['id']}/attainment", params={"as_of": "2017-04-01"}
    )
    assert response.status_code == 200, response.text
    attainment = response.json()
    assert attainment["achieved"] == "16112.00"
    assert attainment["next_cursor"] is None
    records = attainment["records"]
    assert len(records) == 15
    assert sum(money(r["amount"]["amount"]) for r in records) == 16_112
    credited = await every(
        http,
        "/v1/sales",
        credited_manager_id=moses,
        closed_from="2017-01-01T00:00:00Z",
        closed_to="2017-04-01T00:00:00Z",
    )
    assert {r["id"] for r in records} == {s["id"] for s in credited}
    assert {s["external_ref"] for s in credited} == {
        f"crm-deal-{d['opportunity_id']}" for d in deals
    }
    expected_status = "met" if 16_112 >= source.target("Moses Frase", 1) else "missed"
    assert attainment["status"] == expected_status


# --- The CFPB set ------------------------------------------------------------------


async def test_cfpb_complaints(http: AsyncClient, loaded: dict[str, Any], source: Source) -> None:
    imports = loaded["cfpb"]["imports"]
    companies = {c["Company"] for c in source.complaints}
    assert (imports["clients"]["created"], imports["clients"]["rejected"]) == (len(companies), 0)
    report = imports["complaints"]
    assert (report["rows"], report["created"], report["rejected"]) == (1000, 1000, 0)
    complaints = await every(http, "/v1/complaints")
    assert len(complaints) == len(source.complaints) == 1000
    # Narratives with line breaks inside quoted cells arrive whole.
    with_breaks = {
        c["Consumer complaint narrative"]
        for c in source.complaints
        if "\n" in c["Consumer complaint narrative"]
    }
    assert with_breaks
    stored = {c["description"] for c in complaints if "\n" in (c["description"] or "")}
    assert stored == with_breaks
    responses = [c["Company response to consumer"] for c in source.complaints]
    closed = sum(1 for r in responses if r.startswith("Closed"))
    assert sum(1 for c in complaints if c["status"] == "closed") == closed
    assert all("responded_at taken as" in w for w in loaded["cfpb"]["warnings"])


# --- Rules at the end of 2017 ----------------------------------------------------


async def test_quota_missed_for_an_agent(
    http: AsyncClient, rule_run: dict[str, Any], source: Source
) -> None:
    """At 2017-12-31 Q3 ended within the 120-day look-back (Q4 has not ended): Moses
    Frase won less than his region's median, and his flag's evidence says so."""
    achieved = value(source.won_in(3, agent="Moses Frase"))
    target = source.target("Moses Frase", 3)
    assert achieved < target
    moses = await manager_id(http, "Moses Frase")
    (q3,) = await every(http, "/v1/quotas", manager_id=moses, active_at="2017-08-15T00:00:00Z")
    flags = await every(http, "/v1/flags", rule="quota_missed", manager_id=moses)
    assert [f["quota_id"] for f in flags] == [q3["id"]]
    (flag,) = flags
    assert (flag["status"], flag["subject_type"], flag["raised_by_run_id"]) == (
        "open",
        "quota",
        rule_run["id"],
    )
    evidence = flag["evidence"]
    assert evidence["achieved"] == {"amount": f"{achieved}.00", "currency": "USD"}
    assert evidence["target"] == {"amount": f"{target}.00", "currency": "USD"}
    assert money(evidence["attainment"]) == round(Decimal(achieved) / Decimal(target), 4)
    assert datetime.fromisoformat(evidence["period_start"]) == datetime(2017, 7, 1, tzinfo=UTC)
    assert datetime.fromisoformat(evidence["period_end"]) == datetime(2017, 10, 1, tzinfo=UTC)

    # An agent who beat the median in Q3 has no such flag.
    darcel = await manager_id(http, "Darcel Schlecht")
    assert value(source.won_in(3, agent="Darcel Schlecht")) >= source.target("Darcel Schlecht", 3)
    assert await every(http, "/v1/flags", rule="quota_missed", manager_id=darcel) == []


async def test_no_recent_contact_for_an_account(
    http: AsyncClient, rule_run: dict[str, Any], source: Source
) -> None:
    """Acme Corporation (revenue 1,100 M → key, 30 days) was last engaged 2017-11-24:
    37 days before the run. Every CRM account is flagged exactly when its last
    engagement is older than its segment's threshold."""
    as_of = datetime.fromisoformat(AS_OF)
    segment = {a["account"]: segment_of(a["revenue"]) for a in source.accounts}
    last: dict[str, str] = {}
    for deal in source.deals:
        if deal["account"] and deal["engage_date"]:
            last[deal["account"]] = max(last.get(deal["account"], ""), deal["engage_date"])
    assert (segment["Acme Corporation"], last["Acme Corporation"]) == ("key", "2017-11-24")

    acme = await client_id(http, "Acme Corporation")
    (flag,) = await every(http, "/v1/flags", rule="no_recent_contact", client_id=acme)
    assert flag["raised_by_run_id"] == rule_run["id"]
    evidence = flag["evidence"]
    assert datetime.fromisoformat(evidence["last_interaction_at"]) == datetime(
        2017, 11, 24, tzinfo=UTC
    )
    assert evidence["segment"] == "key"
    assert evidence["threshold_days"] == CONTACT_DAYS["key"] == 30
    assert money(evidence["days_since_contact"]) == 37

    names = {c["id"]: c["name"] for c in await every(http, "/v1/clients")}
    flagged = {
        names[f["client_id"]] for f in await every(http, "/v1/flags", rule="no_recent_contact")
    }
    expected = {
        account
        for account, day in last.items()
        if (as_of - datetime.fromisoformat(day).replace(tzinfo=UTC)).days
        > CONTACT_DAYS[segment[account]]
    }
    assert expected
    assert expected != set(last)
    assert flagged == expected


# --- Idempotence (last: it re-reads everything) ------------------------------------


async def test_reloading_changes_nothing(
    loaded: dict[str, Any], engine: AsyncEngine, settings: Settings
) -> None:
    async with engine.connect() as conn:
        before = await count_rows(conn, *TABLES, "audit_events")
    sessionmaker = create_sessionmaker(engine)
    again = {
        "crm": await load_dataset(sessionmaker, settings, "crm-sales", CRM),
        "cfpb": await load_dataset(sessionmaker, settings, "cfpb-complaints", CFPB),
    }
    for name, result in again.items():
        assert result["warnings"] == loaded[name]["warnings"]
        for resource, report in result["imports"].items():
            first = loaded[name]["imports"][resource]
            assert (report["created"], report["updated"]) == (0, 0), (name, resource, report)
            assert report["unchanged"] == first["created"], (name, resource, report)
            assert report["rejected"] == first["rejected"], (name, resource, report)
    async with engine.connect() as conn:
        assert await count_rows(conn, *TABLES, "audit_events") == before
