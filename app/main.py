"""The ASGI application: ``create_app()`` wires routers, middleware and error handlers."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from fastapi import FastAPI
from fastapi.routing import APIRoute

from app import models  # noqa: F401  (registers every table)
from app.assignments.router import router as assignments_router
from app.audit.router import router as audit_router
from app.clients.router import router as clients_router
from app.complaints.router import router as complaints_router
from app.config import Settings, get_settings
from app.core.auth import JwksCache
from app.core.db import create_engine, create_sessionmaker
from app.core.errors import install_error_handlers
from app.core.health import migration_heads
from app.core.health import router as health_router
from app.core.observability import install_observability
from app.imports.router import router as imports_router
from app.interactions.router import router as interactions_router
from app.managers.router import router as managers_router
from app.openapi import finish_openapi
from app.quotas.router import router as quotas_router
from app.reports.router import router as reports_router
from app.rules.router import router as rules_router
from app.rules.scheduler import run_on_schedule
from app.sales.router import router as sales_router
from app.timeline.router import router as timeline_router

API_DESCRIPTION = """System of record for client accounts, the managers responsible for
them, every contact with them, their complaints, sales quotas and risk flags.

Conventions: JSON in snake_case; times RFC 3339 (returned in UTC); money as
`{"amount": "1234.50", "currency": "EUR"}`; errors as RFC 9457 problem+json; lists
cursor-paginated (`limit`, `cursor` → `next_cursor`); `ETag`/`If-Match` on updates;
`Idempotency-Key` on POST; bearer JWT on everything but `/health`."""


# Allocations (less deallocations) between young-generation collections (Python's default
# is 700).
GC_THRESHOLD = 7000


def _operation_id(route: APIRoute) -> str:
    return route.name


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application. The database engine is created in the lifespan, unless the
    caller (a test) has already put ``engine`` and ``sessionmaker`` on ``app.state``."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owns_engine = not hasattr(app.state, "engine")
        if owns_engine:
            if settings.database_url is None:
                raise RuntimeError("DATABASE_URL is not set (use `ams serve` for embedded)")
            app.state.engine = create_engine(settings, settings.database_url)
            app.state.sessionmaker = create_sessionmaker(app.state.engine)
        # What exists once started (modules, mappers, schemas, routes: ~170,000 objects)
        # lives as long as the process. Frozen, the cyclic GC stops traversing it on every
        # full collection (each took ~0.1 s of CPU, a latency spike under load), and the
        # young-generation threshold is raised so request garbage is collected in larger,
        # rarer batches.
        gc.collect()
        gc.freeze()
        gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])
        schedule = None
        if owns_engine and settings.rules.schedule_interval_s > 0:
            schedule = asyncio.create_task(
                run_on_schedule(settings, app.state.sessionmaker), name="rule-schedule"
            )
        try:
            yield
        finally:
            if schedule is not None:
                schedule.cancel()
                with suppress(asyncio.CancelledError):
                    await schedule
            if owns_engine:
                await app.state.engine.dispose()
            if getattr(app.state, "jwks", None) is not None:
                await app.state.jwks.aclose()

    app = FastAPI(
        title="Account management service",
        version="0.1.0",
        description=API_DESCRIPTION,
        lifespan=lifespan,
        generate_unique_id_function=_operation_id,
    )
    app.state.settings = settings
    if settings.auth.jwks_url:
        app.state.jwks = JwksCache(
            settings.auth.jwks_url, settings.auth.jwks_cache_s, settings.auth.jwks_timeout_s
        )
    app.state.migration_heads = migration_heads()
    install_error_handlers(app)
    app.include_router(health_router)
    app.include_router(managers_router)
    app.include_router(clients_router)
    app.include_router(assignments_router)
    app.include_router(interactions_router)
    app.include_router(complaints_router)
    app.include_router(timeline_router)
    app.include_router(sales_router)
    app.include_router(quotas_router)
    app.include_router(rules_router)
    app.include_router(audit_router)
    app.include_router(imports_router)
    app.include_router(reports_router)
    install_observability(app)
    app.openapi = lambda: finish_openapi(app)  # type: ignore[method-assign]
    return app
