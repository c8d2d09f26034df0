"""``ams serve --demo``: the synthetic demo organisation fills an empty database once."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from app.config import Settings
from app.demo import CLIENTS, MANAGERS, seed_demo
from tests.factories import count_rows, create_client

TABLES = (
    "managers",
    "clients",
    "assignments",
    "absences",
    "interactions",
    "complaints",
    "complaint_transitions",
    "fx_rates",
    "sales",
    "quotas",
    "rule_runs",
    "flags",
)


@pytest.fixture
async def session(connection: AsyncConnection) -> AsyncIterator[AsyncSession]:
    """A session on the test's transaction, bound like the app's in conftest."""
    maker = async_sessionmaker(
        bind=connection,
        join_transaction_mode="create_savepoint",
        expire_on_commit=False,
        autoflush=False,
    )
    async with maker() as session:
        yield session


class TestSeedDemo:
    async def test_fills_an_empty_database_once(
        self,
        session: AsyncSession,
        connection: AsyncConnection,
        settings: Settings,
        client: AsyncClient,
    ) -> None:
        assert await seed_demo(session, settings) is True
        await session.flush()
        counts = await count_rows(connection, *TABLES)
        assert counts["managers"] == len(MANAGERS) == 6
        assert counts["clients"] == len(CLIENTS) == 20
        assert counts["assignments"] >= 19
        assert counts["absences"] == 1
        assert counts["interactions"] >= 40
        assert counts["complaints"] == 6
        assert counts["fx_rates"] == 4
        assert counts["sales"] >= 40
        assert counts["quotas"] == 14
        assert counts["rule_runs"] == 1
        assert counts["flags"] > 0

        # The API sees it all: flags of several rules, health below 100 somewhere, names
        # in every script, a critical complaint open, one breached, a missed quota.
        flags = (await client.get("/v1/flags", params={"limit": 500})).json()["items"]
        rules = {f["rule_key"] for f in flags}
        assert {"unassigned", "open_complaints", "complaint_sla_breached"} <= rules, rules
        assert {"negative_sentiment", "overdue_follow_up", "no_recent_contact"} <= rules, rules
        assert "quota_missed" in rules, rules
        report = (await client.get("/v1/reports/account-status", params={"limit": 500})).json()
        assert len(report["items"]) == 20
        assert min(r["health_score"] for r in report["items"]) < 100
        names = " ".join(r["client_name"] for r in report["items"])
        for letter in ("Ü", "Α", "ش", "ש", "Қ", "N"):
            assert letter in names
        complaints = (await client.get("/v1/reports/complaints")).json()
        assert complaints["by_severity"]["critical"] == 1
        assert complaints["breached"] >= 1
        open_critical = await client.get(
            "/v1/complaints", params={"severity": "critical", "status": "open"}
        )
        assert len(open_critical.json()["items"]) == 1

        # A second call finds clients and adds nothing.
        assert await seed_demo(session, settings) is False
        await session.flush()
        assert await count_rows(connection, *TABLES) == counts

    async def test_leaves_a_database_with_clients_alone(
        self,
        session: AsyncSession,
        connection: AsyncConnection,
        settings: Settings,
        client: AsyncClient,
    ) -> None:
        await create_client(client)
        before = await count_rows(connection, *TABLES)
        assert await seed_demo(session, settings) is False
        assert await count_rows(connection, *TABLES) == before
