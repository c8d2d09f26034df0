"""The engine's set-based machinery (issue 6, DESIGN §4 and §6): a run that changes
nothing writes no row, the bulk path of the health scores gives the same scores, the
quota facts agree with the quotas module's attainment (FX per currency and local day,
missing rates, interaction counts), and revenue is converted at one rate per currency
pair (direct or inverse, the latest on or before as_of's local date).

Every test runs in the ``client`` fixture's rolled-back transaction.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection

import app.rules.engine as engine
from app.quotas.models import Quota
from app.quotas.repository import achievement_statement, quota_columns
from app.rules.catalogue import money_json
from tests.factories import (
    count_rows,
    create_client,
    create_interaction,
    create_manager,
    create_quota,
    create_sale,
    list_flags,
    run_rules,
)

D = timedelta(days=1)
H = timedelta(hours=1)
WRITTEN = ("flags", "flag_events", "client_health_history", "audit_events")


def iso(value: datetime) -> str:
    return value.isoformat()


def past(days: float) -> datetime:
    return datetime.now(UTC).replace(microsecond=0) - timedelta(days=days)


async def fx_rate(http: AsyncClient, base: str, quote: str, rate: str, valid_on: str) -> None:
    response = await http.post(
        "/v1/fx-rates", json={"base": base, "quote": quote, "rate": rate, "valid_on": valid_on}
    )
    assert response.status_code == 201, response.text


async def fingerprint(conn: AsyncConnection) -> dict[str, Any]:
    """Row counts of what a run writes, and the flags' versions and update instants."""
    flags = (await conn.execute(text("SELECT sum(version), max(updated_at) FROM flags"))).one()
    return {**await count_rows(conn, *WRITTEN), "flags_version": tuple(flags)}


class TestRerun:
    async def test_a_run_that_changes_nothing_writes_only_its_run(
        self, client: AsyncClient, connection: AsyncConnection
    ) -> None:
        for _ in range(3):
            await create_client(client, lifecycle_stage="active")  # unassigned
        as_of = iso(past(1))
        first = await run_rules(client, as_of)
        assert first["raised"] >= 3
        before = await fingerprint(connection)
        runs = (await count_rows(connection, "rule_runs"))["rule_runs"]

        again = await run_rules(client, as_of)
        assert (again["raised"], again["resolved"], again["reopened"]) == (0, 0, 0)
        assert again["still_open"] == first["raised"]
        assert await fingerprint(connection) == before
        assert (await count_rows(connection, "rule_runs"))["rule_runs"] == runs + 1
        listed = await client.get(f"/v1/rule-runs/{again['id']}")
        assert listed.status_code == 200, listed.text


class TestBulkScores:
    @pytest.mark.parametrize("bulk_changes", [0, 10_000])
    async def test_scores_are_the_same_on_either_path(
        self, client: AsyncClient, monkeypatch: pytest.MonkeyPatch, bulk_changes: int
    ) -> None:
        """Above BULK_CHANGES the scores are computed with one hashed pass (forced here
        with 0); both paths record the same points."""
        monkeypatch.setattr(engine, "BULK_CHANGES", bulk_changes)
        anna = await create_manager(client)
        lone = await create_client(client, lifecycle_stage="active")  # unassigned: high
        quiet = await create_client(client, lifecycle_stage="active", segment="key")
        start = past(120)
        await create_interaction(client, quiet["id"], anna["id"], occurred_at=iso(start))
        # quiet: unassigned (high 25) and no_recent_contact (medium 10) -> 65.
        await run_rules(client, iso(start + 40 * D))
        for who, score in ((lone, 75), (quiet, 65)):
            health = await client.get(f"/v1/clients/{who['id']}/health")
            assert health.status_code == 200, health.text
            assert health.json()["score"] == score
            assert [p["score"] for p in health.json()["history"]] == [score]


class TestQuotaFacts:
    async def test_agree_with_the_quotas_module(
        self, client: AsyncClient, connection: AsyncConnection
    ) -> None:
        """rule_quota_facts (one FX rate per currency and local day) gives every quota the
        achievement and missing rate the quotas module computes."""
        start = past(60)
        # USD -> EUR direct; EUR -> GBP only (inverse), changing during the period;
        # no HUF rate at all.
        await fx_rate(client, "USD", "EUR", "0.9", "2000-01-01")
        await fx_rate(client, "EUR", "GBP", "0.8", "2000-01-01")
        await fx_rate(client, "EUR", "GBP", "0.5", (start + 10 * D).date().isoformat())
        anna, bob, cleo = [await create_manager(client) for _ in range(3)]
        acme = await create_client(client, lifecycle_stage="active", currency="EUR")
        end = start + 100 * D
        mixed = await create_quota(client, anna["id"], iso(start), iso(end))
        missing = await create_quota(client, bob["id"], iso(start), iso(end))
        gbp = await create_quota(client, cleo["id"], iso(start), iso(end), currency="GBP")
        for manager, amount, currency, at in (
            (anna, "100.00", "EUR", start + D),
            (anna, "100.00", "USD", start + D),
            (anna, "40.00", "GBP", start + 2 * D),  # 0.8: 50 EUR
            (anna, "40.00", "GBP", start + 11 * D),  # 0.5: 80 EUR
            (anna, "-20.00", "USD", start + 11 * D + H),
            (bob, "100.00", "EUR", start + D),
            (bob, "100.00", "HUF", start + 3 * D),
            (cleo, "100.00", "EUR", start + 12 * D),
            (cleo, "10.00", "USD", start + 12 * D),  # no USD/GBP rate
        ):
            await create_sale(
                client, acme["id"], amount, currency, iso(at), credited_manager_id=manager["id"]
            )
        calls = await create_quota(
            client,
            anna["id"],
            iso(start),
            iso(end),
            metric="interaction_count",
            target=None,
            target_count=10,
        )
        phone = await create_quota(
            client,
            bob["id"],
            iso(start),
            iso(end),
            metric="interaction_count",
            target=None,
            target_count=10,
            channel="phone",
        )
        for manager, channel, at in (
            (anna, "phone", start + D),
            (anna, "email", start + 2 * D),
            (bob, "phone", start + D),
            (bob, "email", start + 2 * D),
            (bob, "phone", start + 55 * D),  # after as_of
        ):
            await create_interaction(
                client, acme["id"], manager["id"], channel=channel, occurred_at=iso(at)
            )
        as_of = start + 50 * D
        time_zone = "America/New_York"

        await engine._prepare_facts(connection, [], as_of, time_zone)
        facts = {
            str(r.quota_id): (r.achieved, r.missing_rate)
            for r in await connection.execute(
                text("SELECT quota_id, achieved, missing_rate FROM rule_quota_facts")
            )
        }
        quotas = select(*quota_columns()).where(Quota.period_start <= as_of).subquery("quotas")
        expected = {
            str(r.id): (r.achieved, r.missing_rate)
            for r in await connection.execute(
                achievement_statement(quotas, quotas.c.target_currency, as_of, time_zone)
            )
        }
        assert facts == expected
        assert facts[mixed["id"]] == (Decimal("100") + Decimal("90") + 50 + 80 - 18, None)
        assert "HUF/EUR" in str(facts[missing["id"]][1])
        assert "USD/GBP" in str(facts[gbp["id"]][1])
        assert (facts[calls["id"]][0], facts[phone["id"]][0]) == (2, 1)


class TestRevenueRates:
    RULE = "revenue_decline"

    async def test_one_rate_per_pair_direct_or_inverse_latest_by_as_of(
        self, client: AsyncClient
    ) -> None:
        as_of = past(1)
        # EUR clients selling in GBP (inverse rate EUR -> GBP, a newer one after as_of's
        # date is ignored) and in HUF (no rate at all: not evaluated).
        await fx_rate(client, "EUR", "GBP", "0.5", "2000-01-01")
        await fx_rate(client, "EUR", "GBP", "5", (as_of + D).date().isoformat())
        anna = await create_manager(client)
        converted = await create_client(client, lifecycle_stage="active", currency="EUR")
        unpriced = await create_client(client, lifecycle_stage="active", currency="EUR")
        for who, currency in ((converted, "GBP"), (unpriced, "HUF")):
            await create_sale(
                client,
                who["id"],
                "500.00",
                currency,
                iso(as_of - 120 * D),
                credited_manager_id=anna["id"],
            )
        await run_rules(client, iso(as_of))
        flags = {f["subject_id"]: f for f in await list_flags(client, rule=self.RULE)}
        assert unpriced["id"] not in flags
        evidence = flags[converted["id"]]["evidence"]
        assert evidence["previous"] == {"amount": "1000.00", "currency": "EUR"}  # 500 GBP / 0.5
        assert evidence["recent"] == {"amount": "0.00", "currency": "EUR"}


class TestMoneyInEvidence:
    async def test_amounts_have_their_currencys_minor_unit_digits(
        self, connection: AsyncConnection
    ) -> None:
        """Evidence money is rendered as the API renders money (DESIGN §3)."""
        cases = [
            ("1234.5", "JPY", "1235"),
            ("1.23456", "KWD", "1.235"),
            ("-0.005", "EUR", "-0.01"),
            ("1000", "USD", "1000.00"),
        ]
        for amount, currency, expected in cases:
            sql = money_json(f"CAST('{amount}' AS numeric)", f"'{currency}'")
            rendered = (await connection.execute(text(f"SELECT {sql}"))).scalar_one()
            assert rendered == {"amount": expected, "currency": currency}
