"""Liveness and readiness probes (no authentication)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text

from app.core.errors import error_responses, problem_response

ROOT = Path(__file__).resolve().parents[2]

router = APIRouter(prefix="/health", tags=["health"])


def alembic_config() -> Config:
    """Alembic configuration of this repository (``alembic.ini`` at its root)."""
    return Config(str(ROOT / "alembic.ini"))


@cache
def migration_heads() -> frozenset[str]:
    """The head revision(s) of the migrations shipped with this code (read once)."""
    return frozenset(ScriptDirectory.from_config(alembic_config()).get_heads())


class HealthStatus(BaseModel):
    status: str


@router.get("/live", response_model=HealthStatus)
async def get_liveness() -> HealthStatus:
    """Answer 200 while the process runs."""
    return HealthStatus(status="ok")


@router.get("/ready", response_model=HealthStatus, responses=error_responses(503))
async def get_readiness(request: Request) -> JSONResponse:
    """Answer 200 when the database is reachable and its schema is at the latest migration."""
    heads: frozenset[str] = frozenset(request.app.state.migration_heads)
    try:
        async with request.app.state.engine.connect() as conn:
            rows = await conn.execute(text("SELECT version_num FROM alembic_version"))
            current = {r[0] for r in rows}
    except Exception:  # any failure means "not ready"; details go to the log, not the client
        return problem_response(
            request, 503, "not-ready", "Not ready", "The database is not reachable."
        )
    if current != heads:
        return problem_response(
            request,
            503,
            "not-ready",
            "Not ready",
            "The database schema is not at the latest migration.",
        )
    return JSONResponse({"status": "ok"})
