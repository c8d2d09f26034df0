"""Property-based contract test: every operation of the committed ``openapi.yaml``,
driven by Schemathesis against the ASGI app in-process, as an admin.

``@SCHEMA.parametrize()`` makes one test per operation, each on the ``app`` fixture (its
own transaction, rolled back afterwards). Schemathesis runs its examples, coverage
(boundary and invalid values, missing parameters) and fuzzing phases, positive and
negative data, derandomized and bounded (``MAX_EXAMPLES`` fuzzed cases per operation).

A case is sent through ``httpx.ASGITransport`` on the session's event loop, where the
test transaction's connection lives: the test is synchronous (Hypothesis drives it) and
runs each request to completion on that loop, which is idle while a sync test runs.
(Schemathesis' own ASGI transport would run the app on a loop of its own.)

Before sending, half of the generated ids (path, query and body) and ISO codes are
swapped for ids of records seeded in the test's transaction and for real codes (and, in
valid cases, time zones, fiscal periods and rule keys for real ones), so requests reach
the handlers instead of stopping at 404 or 422. The swap depends only on the generated
value, so Hypothesis replays a case identically while shrinking.

Checks: no 5xx; status code, content type and headers documented; body valid against
the response schema; invalid data rejected with a 4xx; a missing required header
rejected. 422, 404, 409 and 412 answers to generated data are expected.
"""

from __future__ import annotations

import asyncio
import logging
import re
import zlib
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from fastapi import FastAPI
from schemathesis import Case
from schemathesis.checks import (
    content_type_conformance,
    missing_required_header,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.config import SchemathesisConfig

from app.config import Environment, Settings
from app.core.auth import Role
from tests.conftest import make_token
from tests.factories import (
    create_assignment,
    create_client,
    create_complaint,
    create_interaction,
    create_manager,
    create_quota,
    create_sale,
    run_rules,
)

SPEC = Path(__file__).resolve().parents[2] / "openapi.yaml"
MAX_EXAMPLES = 12  # fuzzed cases per operation (the coverage phase adds its own)
# Schemathesis puts the token on every case except those that test a missing one. (The
# `settings` fixture differs only in its database URL, which tokens do not depend on.)
ADMIN_TOKEN = make_token(Settings(environment=Environment.test), Role.admin, subject="st-admin")
CONFIG = SchemathesisConfig.from_dict(
    {
        "auth": {"openapi": {"HTTPBearer": {"bearer": ADMIN_TOKEN}}},
        "seed": 9,
        "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
        "phases": {"stateful": {"enabled": False}},
        "suppress-health-check": ["all"],
    }
)
SCHEMA = schemathesis.openapi.from_path(SPEC, config=CONFIG)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    missing_required_header,
]
pytestmark = pytest.mark.slow
# The keyword arguments of `requests.Request` that Schemathesis' serializers produce.
REQUEST_ARGS = ("method", "url", "headers", "params", "cookies", "json", "data", "files")
SHAPES = {
    "id": re.compile(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", re.IGNORECASE),
    "country": re.compile(r"[A-Z]{2}"),
    **dict.fromkeys(("currency", "base", "quote"), re.compile(r"[A-Z]{3}")),
}
CURRENCIES = ["EUR", "HUF", "USD", "JPY", "KWD"]
MANAGER_FIELDS = (
    "manager_id",
    "to_manager_id",
    "reports_to_id",
    "assignee_id",
    "credited_manager_id",
    "successor_id",
    "cover_manager_id",
)


@pytest.fixture(scope="session")
async def session_loop() -> asyncio.AbstractEventLoop:
    """The loop of the session's async fixtures (engine, connections)."""
    return asyncio.get_running_loop()


@pytest.fixture
async def admin_http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An admin client on the app. (`send` of a built request adds none of its default
    headers: generated cases go out exactly as Schemathesis made them.)"""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
        base_url="http://test",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=30,
    ) as http:
        yield http


@pytest.fixture
def _quiet_request_logs() -> Iterator[None]:
    """No INFO line per generated request (thousands; the failure report has the curl)."""
    loggers = [logging.getLogger(name) for name in ("app.access", "httpx")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    yield
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)


@pytest.fixture
async def known(
    admin_http: httpx.AsyncClient, request: pytest.FixtureRequest
) -> dict[str, list[str]]:
    """Values that get past input validation: ids of records seeded in the test's
    transaction, keyed by the parameter or field names that refer to them, and real
    ISO codes, time zones, fiscal periods and import resources. (A rule run and an import
    are seeded only for the operations that name a run, flag or import.)"""
    http = admin_http
    label = re.search(r"\[(.+)\]$", request.node.name)
    operation = SCHEMA.find_operation_by_label(label.group(1)) if label else None
    names = {p.name for p in operation.iter_parameters()} if operation else {"flag_id", "import_id"}
    now = datetime.now(UTC)
    manager = await create_manager(http)
    second = await create_manager(http)
    client = await create_client(http, renewal_date=(now + timedelta(days=30)).date().isoformat())
    unassigned = await create_client(http)  # a rule run flags it
    assignment = await create_assignment(http, client["id"], manager["id"])
    interaction = await create_interaction(http, client["id"], manager["id"])
    complaint = await create_complaint(http, client["id"])
    sale = await create_sale(
        http, client["id"], "1000.00", "HUF", now.isoformat(), credited_manager_id=manager["id"]
    )
    quota = await create_quota(
        http,
        second["id"],
        (now - timedelta(days=10)).isoformat(),
        (now + timedelta(days=20)).isoformat(),
    )
    rate = await http.post(
        "/v1/fx-rates",
        json={"base": "EUR", "quote": "HUF", "rate": "390.5", "valid_on": "2026-01-01"},
    )
    assert rate.status_code == 201, rate.text
    policies = await http.get("/v1/sla-policies")
    managers = [manager["id"], second["id"]]
    clients = [client["id"], unassigned["id"]]
    values = {
        **dict.fromkeys(MANAGER_FIELDS, managers),
        "client_id": clients,
        "parent_id": clients,
        "assignment_id": [assignment["id"]],
        "interaction_id": [interaction["id"]],
        "complaint_id": [complaint["id"]],
        "sale_id": [sale["id"]],
        "quota_id": [quota["id"]],
        "rate_id": [rate.json()["id"]],
        "policy_id": [policies.json()["items"][0]["id"]],
        "key": ["no_recent_contact", "unassigned"],
        "country": ["HU", "AE", "US", "JP"],
        "currency": CURRENCIES,
        "base": CURRENCIES,
        "quote": CURRENCIES,
        "time_zone": ["UTC", "Europe/Budapest", "Asia/Almaty"],
        "period": ["FY2026", "FY2026-Q4", "FY2027-M01", "2026-11"],
        "resource": ["managers", "clients", "sales"],
    }
    if names & {"run_id", "flag_id"}:
        run = await run_rules(http)
        flags = await http.get("/v1/flags", params={"limit": 1})
        assert flags.json()["items"], "the seed should raise at least one flag"
        values["run_id"] = [run["id"]]
        values["flag_id"] = [flags.json()["items"][0]["id"]]
    if "import_id" in names:
        upload = await http.post(
            "/v1/imports",
            data={"resource": "managers", "dry_run": "true"},
            files={"file": ("m.csv", b"external_ref,email,full_name\nx1,x1@example.com,X\n")},
        )
        assert upload.status_code == 202, upload.text
        values["import_id"] = [upload.json()["id"]]
    return values


def _swap(value: Any, known: dict[str, list[str]], positive: bool) -> None:
    """Replace, in place, half of the values under a known key, chosen by a hash of the
    generated value (stable across Hypothesis replays). In a negative case only ids and
    codes of the valid shape are replaced, so the value made invalid stays invalid."""
    if isinstance(value, dict):
        for key, item in list(value.items()):
            options = known.get(key)
            if options and isinstance(item, str) and _replaceable(key, item, positive):
                digest = zlib.crc32(f"{key}={item}".encode())
                if digest % 2 == 0:
                    value[key] = options[(digest >> 1) % len(options)]
            else:
                _swap(item, known, positive)
    elif isinstance(value, list):
        for item in value:
            _swap(item, known, positive)


def _replaceable(key: str, value: str, positive: bool) -> bool:
    shape = SHAPES.get("id" if key.endswith("_id") else key)
    return shape.fullmatch(value) is not None if shape else positive


def _as_httpx(case: Case[Any]) -> httpx.Request:
    """The case as Schemathesis' `requests` transport would put it on the wire (its
    serializers produce `requests` arguments: json, data, files for multipart)."""
    kwargs = case.as_transport_kwargs(base_url="http://test")
    prepared = requests.Request(**{k: v for k, v in kwargs.items() if k in REQUEST_ARGS}).prepare()
    assert prepared.method is not None
    assert prepared.url is not None
    body = prepared.body.encode() if isinstance(prepared.body, str) else prepared.body
    assert body is None or isinstance(body, bytes)
    headers = [
        (name, value.decode("latin-1") if isinstance(value, bytes) else value)
        for name, value in prepared.headers.items()
    ]
    return httpx.Request(prepared.method, prepared.url, headers=headers, content=body)


@SCHEMA.parametrize()
@pytest.mark.usefixtures("_quiet_request_logs")
def test_operation_conforms_to_the_spec(
    case: Case[Any],
    session_loop: asyncio.AbstractEventLoop,
    admin_http: httpx.AsyncClient,
    known: dict[str, list[str]],
) -> None:
    positive = case.meta is None or case.meta.generation.mode.is_positive
    for container in (case.path_parameters, case.query, case.body):
        _swap(container, known, positive)
    request = _as_httpx(case)
    response = session_loop.run_until_complete(admin_http.send(request))
    case.validate_response(response, checks=CHECKS)
