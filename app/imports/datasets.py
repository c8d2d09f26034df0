"""Loaders for the public data sets in ``../shared/data`` (see README for the mapping).

Each loader reads the original files, writes CSV files in our import formats and the
importer does the rest, so the data goes through the same checks as any upload. What
the loader had to interpret (a misspelt country or sector, a product name outside the
catalogue, a "sent" date before the "received" date) is listed in ``warnings``; what it
could not use becomes a rejected row with its reason.
"""

from __future__ import annotations

import csv
import re
import statistics
import unicodedata
from collections import defaultdict
from collections.abc import Iterable
from datetime import date
from pathlib import Path
from typing import Any

# office_location → ISO 3166-1; the misspellings are read but reported.
COUNTRIES = {
    "United States": "US",
    "Germany": "DE",
    "Kenya": "KE",
    "Panama": "PA",
    "Poland": "PL",
    "Romania": "RO",
    "Italy": "IT",
    "Norway": "NO",
    "Brazil": "BR",
    "Jordan": "JO",
    "China": "CN",
    "Japan": "JP",
    "Belgium": "BE",
    "Philippines": "PH",
    "Korea": "KR",
}
COUNTRY_ALIASES = {"Philipines": "Philippines"}
SECTOR_ALIASES = {"technolgy": "technology"}

# Why a CRM file leaves a required cell blank, by file and column: the importer reports
# it instead of "client_ref is required", which names a column of a temporary file. One
# text for every such row, so that a load's summary groups them (the row's external_ref,
# crm-engage-<opportunity_id> or crm-deal-<opportunity_id>, names the deal).
BLANK_ACCOUNT = "the deal has a blank account in sales_pipeline.csv"
CRM_BLANK_REASONS = {
    "sales": {"client_ref": BLANK_ACCOUNT},
    "interactions": {"client_ref": BLANK_ACCOUNT},
}


def slug(value: str) -> str:
    """A stable ASCII key for a name (external refs, e-mail local parts)."""
    folded = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", folded.lower()).strip("-") or "x"


def _write(path: Path, header: list[str], rows: Iterable[dict[str, Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=header)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return path


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8-sig") as source:
        return list(csv.DictReader(source))


def _quarter(day: str) -> tuple[int, int]:
    parsed = date.fromisoformat(day)
    return parsed.year, (parsed.month - 1) // 3 + 1


def _quarter_bounds(year: int, quarter: int) -> tuple[str, str]:
    start = date(year, 3 * quarter - 2, 1)
    end = date(year + (quarter == 4), 1 if quarter == 4 else 3 * quarter + 1, 1)
    return start.isoformat(), end.isoformat()


def segment_for_revenue(revenue_millions: float) -> str:
    """Segment from annual revenue (USD millions): ≥ 5,000 strategic, ≥ 1,000 key,
    ≥ 500 enterprise, ≥ 100 mid_market, else small."""
    for floor, segment in (
        (5000, "strategic"),
        (1000, "key"),
        (500, "enterprise"),
        (100, "mid_market"),
    ):
        if revenue_millions >= floor:
            return segment
    return "small"


def crm_sales_files(source: Path, out: Path) -> tuple[dict[str, Path], list[str]]:
    """CRM Sales Opportunities → managers, clients, assignments, sales, interactions and
    quotas files (in import order) and the warnings."""
    warnings: list[str] = []
    teams = _read(source / "sales_teams.csv")
    accounts = _read(source / "accounts.csv")
    deals = _read(source / "sales_pipeline.csv")
    products = {p["product"] for p in _read(source / "products.csv")}

    def agent_ref(name: str) -> str:
        return f"crm-agent-{slug(name)}"

    def account_ref(name: str) -> str:
        return f"crm-account-{slug(name)}"

    managers: dict[str, dict[str, Any]] = {}
    region_of: dict[str, str] = {}
    for row in teams:
        lead = row["manager"]
        managers.setdefault(
            lead,
            {
                "external_ref": f"crm-manager-{slug(lead)}",
                "email": f"{slug(lead)}@crm.example",
                "full_name": lead,
                "role": "team_lead",
                "reports_to_ref": None,
                "region": row["regional_office"],
            },
        )
        region_of[row["sales_agent"]] = row["regional_office"]
    agents = [
        {
            "external_ref": agent_ref(r["sales_agent"]),
            "email": f"{slug(r['sales_agent'])}@crm.example",
            "full_name": r["sales_agent"],
            "role": "account_manager",
            "reports_to_ref": managers[r["manager"]]["external_ref"],
            "region": r["regional_office"],
        }
        for r in teams
    ]
    files = {
        "managers": _write(
            out / "managers.csv",
            ["external_ref", "email", "full_name", "role", "reports_to_ref", "region"],
            [*managers.values(), *agents],
        )
    }

    clients = []
    for row in accounts:
        location = row["office_location"].strip()
        if location in COUNTRY_ALIASES:
            warnings.append(
                f"account {row['account']}: office_location {location!r} read as "
                f"{COUNTRY_ALIASES[location]!r}"
            )
            location = COUNTRY_ALIASES[location]
        if location == "Korea":
            warnings.append(f"account {row['account']}: office_location 'Korea' read as KR")
        sector = row["sector"].strip()
        if sector in SECTOR_ALIASES:
            warnings.append(
                f"account {row['account']}: sector {sector!r} read as {SECTOR_ALIASES[sector]!r}"
            )
            sector = SECTOR_ALIASES[sector]
        revenue = float(row["revenue"] or 0)
        clients.append(
            {
                "external_ref": account_ref(row["account"]),
                "name": row["account"],
                "industry": sector or None,
                "segment": segment_for_revenue(revenue),
                "lifecycle_stage": "active",
                "parent_ref": account_ref(row["subsidiary_of"]) if row["subsidiary_of"] else None,
                "country": COUNTRIES.get(location),  # unknown: rejected ("country is required")
                "currency": "USD",
                "annual_value": f"{revenue * 1_000_000:.2f}",
                "annual_value_currency": "USD",
            }
        )
    files["clients"] = _write(
        out / "clients.csv",
        [
            "external_ref",
            "name",
            "industry",
            "segment",
            "lifecycle_stage",
            "parent_ref",
            "country",
            "currency",
            "annual_value",
            "annual_value_currency",
        ],
        clients,
    )

    won = [d for d in deals if d["deal_stage"] == "Won"]
    # Primary owner per account and quarter: the agent with the most won value there that
    # quarter (ties: more deals, then name); the other winning agents are secondary.
    per_quarter: dict[tuple[str, int, int], dict[str, list[int]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for deal in won:
        if deal["account"]:
            year, quarter = _quarter(deal["close_date"])
            per_quarter[(deal["account"], year, quarter)][deal["sales_agent"]].append(
                int(deal["close_value"])
            )
    assignments = []
    for (account, year, quarter), by_agent in sorted(per_quarter.items()):
        ranked = sorted(by_agent.items(), key=lambda kv: (-sum(kv[1]), -len(kv[1]), kv[0]))
        starts, ends = _quarter_bounds(year, quarter)
        for position, (agent, _) in enumerate(ranked):
            assignments.append(
                {
                    "external_ref": f"crm-owner-{slug(account)}-{year}q{quarter}-{slug(agent)}",
                    "client_ref": account_ref(account),
                    "manager_ref": agent_ref(agent),
                    "role": "primary" if position == 0 else "secondary",
                    "starts_at": starts,
                    "ends_at": ends,
                    "reason": f"won most with the account in {year}-Q{quarter}"
                    if position == 0
                    else f"also won with the account in {year}-Q{quarter}",
                }
            )
    files["assignments"] = _write(
        out / "assignments.csv",
        ["external_ref", "client_ref", "manager_ref", "role", "starts_at", "ends_at", "reason"],
        assignments,
    )

    unknown_products = sorted({d["product"] for d in won} - products)
    for product in unknown_products:
        count = sum(1 for d in won if d["product"] == product)
        warnings.append(
            f"product {product!r} is not in products.csv ({count} won deals); kept as written"
        )
    files["sales"] = _write(
        out / "sales.csv",
        [
            "external_ref",
            "client_ref",
            "amount",
            "currency",
            "closed_at",
            "kind",
            "product",
            "credited_manager_ref",
        ],
        (
            {
                "external_ref": f"crm-deal-{d['opportunity_id']}",
                "client_ref": account_ref(d["account"]) if d["account"] else None,
                "amount": d["close_value"],
                "currency": "USD",
                "closed_at": d["close_date"],
                "kind": "new",
                "product": d["product"],
                "credited_manager_ref": agent_ref(d["sales_agent"]),
            }
            for d in won
        ),
    )

    # Engage dates are the recorded contacts (the mapping); close dates are not.
    # A deal with a blank account leaves client_ref blank: rejected, see CRM_BLANK_REASONS.
    interactions = []
    for d in deals:
        if d["engage_date"]:
            interactions.append(
                {
                    "external_ref": f"crm-engage-{d['opportunity_id']}",
                    "client_ref": account_ref(d["account"]) if d["account"] else None,
                    "manager_ref": agent_ref(d["sales_agent"]),
                    "channel": "meeting",
                    "direction": "outbound",
                    "occurred_at": d["engage_date"],
                    "subject": f"{d['product']} opportunity {d['opportunity_id']}: engaged",
                    "sentiment": "neutral",
                }
            )
    files["interactions"] = _write(
        out / "interactions.csv",
        [
            "external_ref",
            "client_ref",
            "manager_ref",
            "channel",
            "direction",
            "occurred_at",
            "subject",
            "sentiment",
        ],
        interactions,
    )

    # Quotas for every agent and quarter of 2017: the median of the quarterly won value of
    # the agents of the same region that quarter (agents with no win count as 0).
    totals: dict[tuple[str, int], int] = defaultdict(int)
    for d in won:
        year, quarter = _quarter(d["close_date"])
        if year == 2017:
            totals[(d["sales_agent"], quarter)] += int(d["close_value"])
    quotas = []
    for quarter in (1, 2, 3, 4):
        for region in sorted(set(region_of.values())):
            members = [a for a, r in region_of.items() if r == region]
            target = round(statistics.median(totals[(a, quarter)] for a in members))
            if target <= 0:
                continue
            for agent in members:
                quotas.append(
                    {
                        "external_ref": f"crm-quota-{slug(agent)}-2017q{quarter}",
                        "manager_ref": agent_ref(agent),
                        "metric": "sales_amount",
                        "period": f"FY2017-Q{quarter}",
                        "target_amount": f"{target}.00",
                        "target_currency": "USD",
                    }
                )
    files["quotas"] = _write(
        out / "quotas.csv",
        ["external_ref", "manager_ref", "metric", "period", "target_amount", "target_currency"],
        quotas,
    )
    return files, warnings


# CFPB product → complaint category (documented in README).
CFPB_CATEGORIES = {
    "debt collection": "billing",
    "credit card": "billing",
    "credit card or prepaid card": "billing",
    "prepaid card": "billing",
    "checking or savings account": "service",
    "bank account or service": "service",
    "credit reporting": "service",
    "credit reporting, credit repair services, or other personal consumer reports": "service",
    "credit reporting or other personal consumer reports": "service",
    "money transfer, virtual currency, or money service": "delivery",
    "money transfers": "delivery",
    "mortgage": "product",
    "student loan": "product",
    "vehicle loan or lease": "product",
    "payday loan, title loan, or personal loan": "product",
    "payday loan, title loan, personal loan, or advance loan": "product",
    "consumer loan": "product",
}
CFPB_CHANNELS = {"Phone": "phone", "Email": "email"}


def cfpb_files(source_file: Path, out: Path) -> tuple[dict[str, Path], list[str]]:
    """CFPB complaints sample → clients (one per company) and complaints files."""
    warnings: list[str] = []
    rows = _read(source_file)
    counts: dict[str, int] = defaultdict(int)
    for row in rows:
        counts[row["Company"]] += 1
    clients = [
        {
            "external_ref": f"cfpb-company-{slug(company)}",
            "name": company,
            "segment": "key" if n >= 50 else "enterprise" if n >= 10 else "mid_market",
            "lifecycle_stage": "active",
            "country": "US",
            "currency": "USD",
        }
        for company, n in sorted(counts.items())
    ]
    files = {
        "clients": _write(
            out / "clients.csv",
            ["external_ref", "name", "segment", "lifecycle_stage", "country", "currency"],
            clients,
        )
    }
    complaints = []
    for row in rows:
        response = row["Company response to consumer"].strip()
        closed = response.startswith("Closed")
        received, sent = row["Date received"], row["Date sent to company"]
        if closed and sent and sent < received:
            warnings.append(
                f"complaint {row['Complaint ID']}: sent to company {sent} before received "
                f"{received}; responded_at taken as {received}"
            )
            sent = received
        product = row["Product"].strip().lower()
        complaints.append(
            {
                "external_ref": f"cfpb-{row['Complaint ID']}",
                "client_ref": f"cfpb-company-{slug(row['Company'])}",
                "title": (row["Issue"] or row["Product"] or "Complaint")[:300],
                "description": row["Consumer complaint narrative"] or None,
                "category": CFPB_CATEGORIES.get(product, "other"),
                "severity": "high" if row["Timely response?"] == "No" else "medium",
                "channel": CFPB_CHANNELS.get(row["Submitted via"], "other"),
                "received_at": received,
                "status": "closed" if closed else "open",
                "responded_at": (sent or received) if closed else None,
                "resolution": "; ".join(x for x in (response, row["Company public response"]) if x)
                if closed
                else None,
            }
        )
    files["complaints"] = _write(
        out / "complaints.csv",
        [
            "external_ref",
            "client_ref",
            "title",
            "description",
            "category",
            "severity",
            "channel",
            "received_at",
            "status",
            "responded_at",
            "resolution",
        ],
        complaints,
    )
    return files, warnings
