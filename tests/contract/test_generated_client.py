"""The committed ``openapi.yaml`` is usable as-is: a Python client generated from it by
``openapi-python-client`` (with warnings treated as errors) drives a whole account story
against the app.

The client is generated into a temporary directory (never into the repository) and
imported from there. It talks to the app in-process: its ``httpx.AsyncClient`` gets an
``httpx.ASGITransport`` on the ``app`` fixture, so everything runs in the test's
transaction and is rolled back.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.config import Settings
from app.core.auth import Role
from tests.conftest import make_token

SPEC = Path(__file__).resolve().parents[2] / "openapi.yaml"
PACKAGE = "ams_generated_client"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The generated client package, importable for the module's tests."""
    root = tmp_path_factory.mktemp("generated")
    config = root / "openapi-python-client.yaml"
    config.write_text("post_hooks: []\n", encoding="utf-8")  # no ruff run on the output
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "openapi_python_client",
            "generate",
            "--path",
            str(SPEC),
            "--meta",
            "none",
            "--output-path",
            str(root / PACKAGE),
            "--config",
            str(config),
            "--fail-on-warning",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"generation failed:\n{result.stdout}\n{result.stderr}"
    sys.path.insert(0, str(root))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(root))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def _module(name: str) -> Any:
    return importlib.import_module(f"{PACKAGE}.{name}")


def _ok(response: Any, status: HTTPStatus, model: type) -> Any:
    """The parsed body of a response that has the expected status and model."""
    assert response.status_code == status, (response.status_code, response.content)
    assert isinstance(response.parsed, model), response.parsed
    return response.parsed


async def test_generated_client_runs_an_account_story(
    app: FastAPI, settings: Settings, generated: ModuleType
) -> None:
    m = _module("models")
    client = generated.AuthenticatedClient(
        base_url="http://test",
        token=make_token(settings, Role.admin, subject="generated-client"),
        httpx_args={"transport": httpx.ASGITransport(app=app)},
        raise_on_unexpected_status=True,
    )
    async with client:
        # Two managers and a client.
        managers = []
        for name in ("Kovács Anna", "Παπαδόπουλος Νίκος"):
            body = m.ManagerCreate(
                email=f"{uuid.uuid4().hex[:10]}@example.com",
                full_name=name,
                role=m.ManagerRole.ACCOUNT_MANAGER,
                time_zone="Europe/Budapest",
            )
            created = await _module("api.managers.create_manager").asyncio_detailed(
                client=client, body=body, idempotency_key=str(uuid.uuid4())
            )
            managers.append(_ok(created, HTTPStatus.CREATED, m.ManagerRead))
        first, second = managers
        account = _ok(
            await _module("api.clients.create_client").asyncio_detailed(
                client=client,
                body=m.ClientCreate(
                    name="Ügyfél Kft.",
                    segment=m.Segment.KEY,
                    lifecycle_stage=m.LifecycleStage.ACTIVE,  # rules look at active clients
                    country="HU",
                    currency="HUF",
                    annual_value=m.Money(amount="250000.00", currency="HUF"),
                ),
            ),
            HTTPStatus.CREATED,
            m.ClientRead,
        )
        assert account.annual_value.amount == "250000.00"

        # The first manager is primary; the client is then handed over to the second.
        primary = _ok(
            await _module("api.assignments.create_assignment").asyncio_detailed(
                client=client,
                body=m.AssignmentCreate(
                    client_id=account.id, manager_id=first.id, role=m.AssignmentRole.PRIMARY
                ),
            ),
            HTTPStatus.CREATED,
            m.AssignmentRead,
        )
        handover = _ok(
            await _module("api.assignments.hand_over_client").asyncio_detailed(
                account.id,
                client=client,
                body=m.HandoverRequest(to_manager_id=second.id, reason="Territory change"),
            ),
            HTTPStatus.CREATED,
            m.HandoverRead,
        )
        assert handover.ended.id == primary.id
        assert handover.started.manager_id == second.id
        responsible = _ok(
            await _module("api.assignments.get_responsible_manager").asyncio_detailed(
                account.id, client=client
            ),
            HTTPStatus.OK,
            m.Responsibility,
        )
        assert responsible.manager_id == second.id

        # The new manager calls the client, who raises a critical complaint.
        interaction = _ok(
            await _module("api.interactions.create_interaction").asyncio_detailed(
                client=client,
                body=m.InteractionCreate(
                    client_id=account.id,
                    manager_id=second.id,
                    channel=m.Channel.PHONE,
                    direction=m.Direction.OUTBOUND,
                    occurred_at=datetime.now(UTC),
                    subject="Introduction after the handover",
                    sentiment=m.Sentiment.NEGATIVE,
                ),
            ),
            HTTPStatus.CREATED,
            m.InteractionRead,
        )
        assert interaction.manager_id == second.id
        complaint = _ok(
            await _module("api.complaints.create_complaint").asyncio_detailed(
                client=client,
                body=m.ComplaintCreate(
                    client_id=account.id,
                    title="Invoice charged twice",
                    category=m.Category.BILLING,
                    severity=m.Severity.CRITICAL,
                ),
            ),
            HTTPStatus.CREATED,
            m.ComplaintRead,
        )
        assert complaint.assignee_id == second.id  # responsible at received_at

        # A rule run flags the open critical complaint; the health score shows it.
        run = _ok(
            await _module("api.rules.create_rule_run").asyncio_detailed(
                client=client, body=m.RuleRunCreate()
            ),
            HTTPStatus.CREATED,
            m.RuleRunRead,
        )
        assert run.raised >= 1
        health = _ok(
            await _module("api.rules.get_client_health").asyncio_detailed(
                account.id, client=client
            ),
            HTTPStatus.OK,
            m.ClientHealth,
        )
        assert health.client_id == account.id
        assert "open_complaints" in {flag.rule_key for flag in health.open_flags}
        assert 0 <= health.score < 100

        # Errors parse as the documented problem.
        missing = await _module("api.clients.get_client").asyncio_detailed(
            uuid.uuid4(), client=client
        )
        problem = _ok(missing, HTTPStatus.NOT_FOUND, m.Problem)
        assert problem.status == 404
