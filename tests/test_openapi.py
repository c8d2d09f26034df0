"""The committed openapi.yaml is exactly what the app serves."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from fastapi import FastAPI
from httpx import AsyncClient

from app.openapi import render_openapi

SPEC = Path(__file__).resolve().parents[1] / "openapi.yaml"
REGENERATE = "./dev ams openapi"


def test_committed_spec_matches_the_app(app: FastAPI) -> None:
    assert SPEC.read_text(encoding="utf-8") == render_openapi(app), (
        f"openapi.yaml is out of date; regenerate it with `{REGENERATE}`"
    )


async def test_served_spec_equals_the_committed_file(anon: AsyncClient) -> None:
    served = await anon.get("/openapi.json")
    assert served.status_code == 200
    assert served.json() == yaml.safe_load(SPEC.read_text(encoding="utf-8"))


def test_operation_ids_are_unique_snake_case(app: FastAPI) -> None:
    ids = [
        op["operationId"] for methods in app.openapi()["paths"].values() for op in methods.values()
    ]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[a-z]+(_[a-z]+)*", i) for i in ids), ids


def test_every_error_response_is_problem_json(app: FastAPI) -> None:
    for path, methods in app.openapi()["paths"].items():
        for method, op in methods.items():
            for status, response in op["responses"].items():
                if status[0] in "45":
                    assert list(response["content"]) == ["application/problem+json"], (
                        path,
                        method,
                        status,
                    )
            if path.startswith("/v1/"):
                assert op.get("security"), (path, method)
                assert "401" in op["responses"], (path, method)
