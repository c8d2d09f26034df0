# ruff: noqa: E402
"""The bare baseline of ``bench/http_load.py``: one FastAPI endpoint, one raw asyncpg fetch.

``GET /clients/{id}`` fetches a client row by primary key from an asyncpg pool (created
at startup, as many connections as the service's SQLAlchemy pool may open) and returns it
as JSON; no auth, no middleware, no ORM, no response model. ``GET /health/live`` answers
``{"status": "ok"}`` without touching the database.

Run by ``bench/http_load.py`` as ``.venv/bin/python bench/baseline_app.py --port P`` with
``DATABASE_URL`` set; it is served exactly as ``ams serve`` serves the service (one
process, ``uvicorn.Server(...).serve()`` under ``asyncio.run``, ``log_config=None``,
``proxy_headers=True``), so the ratio of the two measures the service's own work.
"""

from __future__ import annotations

import os
import sys

# This folder also holds ``http.py``, which would shadow the standard library's ``http``
# package (Python puts a script's folder first on the import path): take it off.
_HERE = os.path.realpath(os.path.dirname(os.path.abspath(__file__)))
sys.path[:] = [p for p in sys.path if os.path.realpath(p or os.curdir) != _HERE]

import argparse
import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import uvicorn
from fastapi import FastAPI, HTTPException, Request

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
# The columns ``GET /v1/clients/{id}`` returns.
CLIENT_SQL = """
SELECT id, version, created_at, updated_at, created_by, updated_by, name, legal_name,
       external_ref, industry, segment, lifecycle_stage, parent_id, country, currency,
       time_zone, renewal_date, annual_value_amount, annual_value_currency, archived_at
FROM clients WHERE id = $1
"""
# The service's defaults: DB__POOL_SIZE=10, DB__MAX_OVERFLOW=10.
POOL_MIN = 10
POOL_MAX = 20


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    url = os.environ.get("DATABASE_URL", DEFAULT_URL)
    pool = await asyncpg.create_pool(
        url,
        min_size=POOL_MIN,
        max_size=POOL_MAX,
        server_settings={"application_name": "ams-bench-baseline"},
    )
    app.state.pool = pool
    try:
        yield
    finally:
        await pool.close()


app = FastAPI(title="ams bench baseline", lifespan=lifespan)


@app.get("/health/live")
async def live() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/clients/{client_id}")
async def get_client(client_id: uuid.UUID, request: Request) -> dict[str, Any]:
    pool: asyncpg.Pool = request.app.state.pool
    row = await pool.fetchrow(CLIENT_SQL, client_id)
    if row is None:
        raise HTTPException(status_code=404, detail="not found")
    return dict(row)


def main() -> None:
    parser = argparse.ArgumentParser(description="Bare FastAPI + asyncpg baseline.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    # As ``ams serve`` leaves it: no uvicorn access log.
    logging.getLogger("uvicorn.access").handlers[:] = []
    logging.getLogger("uvicorn.access").propagate = False
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=args.host,
            port=args.port,
            log_config=None,
            timeout_graceful_shutdown=20,
            proxy_headers=True,
        )
    )
    asyncio.run(server.serve())


if __name__ == "__main__":
    main()
