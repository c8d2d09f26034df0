"""Regression tests for what the Schemathesis run (``test_schemathesis.py``) found.

1. A request body that cannot be read at all (JSON that is not UTF-8) is answered with
   FastAPI's 400, which the spec did not document. ``finish_openapi`` now documents a
   400 problem+json on every operation with a request body. (Should the app answer 422
   instead, the test still holds: any documented 4xx problem.)
2. Instants, dates and integers accept values of another JSON type: a number where the
   spec says an RFC 3339 ``date-time`` string (read as a Unix timestamp: ``as_of=0`` is
   1970-01-01), in the query string and in bodies; a number for a ``date``; ``false``
   for an integer. The spec (and the README: "times RFC 3339; dates ISO") says these are
   invalid input, so each must be a 422 naming the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from httpx import AsyncClient

from tests.factories import create_assignment, create_client, create_manager

SPEC: dict[str, Any] = yaml.safe_load(
    (Path(__file__).resolve().parents[2] / "openapi.yaml").read_text(encoding="utf-8")
)
PROBLEM_JSON = "application/problem+json"
JSON_BODY_OPERATIONS = sorted(
    (method.upper(), path)
    for path, methods in SPEC["paths"].items()
    for method, operation in methods.items()
    if "application/json" in operation.get("requestBody", {}).get("content", {})
)
NOT_UTF8 = b"\xff\xfe{"
# 2026-01-01T00:00:00Z as a Unix timestamp: valid as an instant, so only its type is wrong.
EPOCH_2026 = 1767225600


def _documented(method: str, path: str) -> set[int]:
    return {int(s) for s in SPEC["paths"][path][method.lower()]["responses"]}


def _concrete(path: str) -> str:
    """A path template with every ``{param}`` filled (an id that names nothing)."""
    filler = "00000000-0000-4000-8000-000000000000"
    parts = [filler if p.startswith("{") else p for p in path.split("/")]
    return "/".join(parts)


def _assert_rejects(response: Any, field: str) -> None:
    assert response.status_code == 422, (response.status_code, response.text)
    assert response.headers["content-type"] == PROBLEM_JSON
    fields = [error["field"] for error in response.json().get("errors") or []]
    assert field in fields, response.json()


# --- 1. unreadable body: a documented 400 problem ---------------------------------------


@pytest.mark.parametrize(
    ("method", "path"), JSON_BODY_OPERATIONS, ids=[" ".join(op) for op in JSON_BODY_OPERATIONS]
)
async def test_a_body_that_is_not_utf8_is_a_documented_problem(
    client: AsyncClient, method: str, path: str
) -> None:
    response = await client.request(
        method,
        _concrete(path),
        content=NOT_UTF8,
        headers={"Content-Type": "application/json", "If-Match": '"1"'},
    )
    assert response.status_code in {400, 422}, response.text
    assert response.status_code in _documented(method, path)
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json()["status"] == response.status_code


# --- 2. numbers are not instants, dates or booleans --------------------------------------

NUMERIC_INSTANT_QUERIES = [
    ("/v1/managers", "updated_since"),
    ("/v1/clients", "updated_since"),
    ("/v1/assignments", "active_at"),
    ("/v1/interactions", "occurred_from"),
    ("/v1/interactions", "occurred_to"),
    ("/v1/complaints", "received_from"),
    ("/v1/complaints", "received_to"),
    ("/v1/sales", "closed_from"),
    ("/v1/sales", "closed_to"),
    ("/v1/quotas", "active_at"),
    ("/v1/audit-events", "at_from"),
    ("/v1/audit-events", "at_to"),
    ("/v1/reports/complaints", "from"),
    ("/v1/reports/complaints", "to"),
    ("/v1/fx-rates", "valid_from"),  # format: date
    ("/v1/fx-rates", "valid_to"),  # format: date
]


@pytest.mark.parametrize(
    ("path", "name"), NUMERIC_INSTANT_QUERIES, ids=[f"{p}?{n}" for p, n in NUMERIC_INSTANT_QUERIES]
)
@pytest.mark.parametrize("value", ["0.5", str(EPOCH_2026)])
async def test_a_number_is_not_a_date_or_instant_in_the_query(
    client: AsyncClient, path: str, name: str, value: str
) -> None:
    """e.g. ``GET /v1/managers?updated_since=0.5``: today a 200 filtering from 1970."""
    _assert_rejects(await client.get(path, params={name: value}), f"query.{name}")


async def test_a_number_is_not_an_as_of_for_the_book(client: AsyncClient) -> None:
    manager = await create_manager(client)
    response = await client.get(
        f"/v1/managers/{manager['id']}/book", params={"as_of": str(EPOCH_2026)}
    )
    _assert_rejects(response, "query.as_of")


async def test_a_number_is_not_an_as_of_for_a_rule_run(client: AsyncClient) -> None:
    """``{"as_of": 0}`` today evaluates every rule at 1970-01-01 and records the run."""
    before = (await client.get("/v1/rule-runs")).json()["items"]
    response = await client.post("/v1/rule-runs", json={"as_of": EPOCH_2026})
    _assert_rejects(response, "body.as_of")
    assert (await client.get("/v1/rule-runs")).json()["items"] == before


@pytest.mark.parametrize(
    ("body", "field"),
    [({"as_of": EPOCH_2026}, "body.as_of"), ({"limit": False}, "body.limit")],
    ids=["as_of-number", "limit-false"],
)
async def test_simulation_takes_an_instant_and_an_integer(
    client: AsyncClient, body: dict[str, Any], field: str
) -> None:
    _assert_rejects(await client.post("/v1/rule-runs/simulate", json=body), field)


async def test_a_number_is_not_a_valid_on_date_for_an_fx_rate(client: AsyncClient) -> None:
    """``"valid_on": 0`` today publishes a rate valid from 1970-01-01 (and rates are
    never edited)."""
    response = await client.post(
        "/v1/fx-rates",
        json={"base": "JPY", "quote": "EUR", "rate": "0.0061", "valid_on": 0},
    )
    _assert_rejects(response, "body.valid_on")


async def test_a_number_is_not_an_ends_at_for_an_assignment(client: AsyncClient) -> None:
    manager = await create_manager(client)
    target = await create_client(client)
    assignment = await create_assignment(client, target["id"], manager["id"])
    response = await client.patch(
        f"/v1/assignments/{assignment['id']}",
        json={"ends_at": EPOCH_2026 + 10 * 365 * 86400},
        headers={"If-Match": f'"{assignment["version"]}"'},
    )
    _assert_rejects(response, "body.ends_at")


@pytest.mark.parametrize("value", ["yesterday", "2026-02-30", "2026-01-01T10:00:00"])
async def test_an_instant_or_date_field_gives_one_error_naming_it(
    client: AsyncClient, value: str
) -> None:
    """Not an instant with an offset, not a date: one error on ``query.from``, not one per
    member of the union (whose names would leak into ``field``)."""
    response = await client.get("/v1/reports/complaints", params={"from": value})
    _assert_rejects(response, "query.from")
    assert [e["field"] for e in response.json()["errors"]] == ["query.from"]


@pytest.mark.parametrize("value", ["2026-01-01", "2026-01-01T00:00:00+01:00"])
async def test_an_instant_or_date_field_still_takes_both(client: AsyncClient, value: str) -> None:
    response = await client.get("/v1/reports/complaints", params={"from": value})
    assert response.status_code == 200, response.text
