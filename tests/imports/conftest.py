"""Fixtures of the importer tests: an importer in the test's rolled-back transaction and
the small organisation of ``test_importer`` imported file by file."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection, async_sessionmaker

from app.config import Settings
from tests.imports.test_importer import ORG, Importer


@pytest.fixture
def importer(connection: AsyncConnection, settings: Settings) -> Importer:
    sessionmaker = async_sessionmaker(
        bind=connection,
        join_transaction_mode="create_savepoint",
        expire_on_commit=False,
        autoflush=False,
    )
    return Importer(sessionmaker, settings)


@pytest.fixture
async def org(importer: Importer) -> dict[str, dict[str, Any]]:
    """The small organisation, imported file by file; returns each report."""
    reports = {}
    for resource, rows in ORG.items():
        report = await importer(resource, rows)
        assert report["created"] == len(rows) - 1, report
        assert report["rejected"] == 0, report
        reports[resource] = report
    return reports
