"""In-process schedule of rule runs (``RULES__SCHEDULE_INTERVAL_S``; 0 turns it off).

Every replica runs the loop. Each tick takes the engine's advisory lock (skipping the
tick if another replica holds it) and, holding it, skips the tick as well when any
replica's scheduled run started less than one interval ago, so N replicas still give
one scheduled run per interval, not N.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.core.errors import Conflict
from app.rules.engine import LOCK_KEY, run_rules
from app.rules.models import RuleRun

log = structlog.get_logger("app.rules.scheduler")
SCHEDULER = "scheduler"


async def _due(session: AsyncSession, interval_s: float) -> bool:
    """Whether this tick should run: the lock is free and the last scheduled run (by any
    replica) started at least ``interval_s`` seconds ago (with 10 % slack for timer
    jitter). Holds the transaction-scoped lock when true; the run takes it again (the
    session already owns it)."""
    conn = await session.connection()
    got = (
        await conn.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": LOCK_KEY})
    ).scalar_one()
    if not got:
        return False
    # Read under the lock: the previous run's row committed before its lock was freed.
    last = (
        await session.execute(
            select(func.max(RuleRun.started_at)).where(RuleRun.trigger == SCHEDULER)
        )
    ).scalar_one()
    return last is None or datetime.now(UTC) - last >= timedelta(seconds=interval_s * 0.9)


async def scheduled_tick(settings: Settings, sessionmaker: Any) -> RuleRun | None:
    """One tick of the schedule: the run, or None when skipped (another replica is
    running the rules, or already ran them within the interval)."""
    async with sessionmaker.begin() as session:
        if not await _due(session, settings.rules.schedule_interval_s):
            return None
        return await run_rules(
            session,
            as_of=None,
            time_zone=settings.org.time_zone,
            trigger=SCHEDULER,
            actor=SCHEDULER,
            wait=False,
            statement_timeout_ms=settings.rules.statement_timeout_ms,
        )


async def run_on_schedule(settings: Settings, sessionmaker: Any) -> None:
    """Sleep, run, repeat until cancelled; failures are logged and the loop goes on."""
    interval = settings.rules.schedule_interval_s
    while True:
        await asyncio.sleep(interval)
        try:
            run = await scheduled_tick(settings, sessionmaker)
        except Conflict:  # pragma: no cover - _due holds the lock, kept for safety
            run = None
        except Exception:  # keep the schedule alive; the failure is in the log
            log.exception("rule_run_failed")
            continue
        if run is None:
            log.info("rule_run_skipped", reason="another replica ran or is running the rules")
        else:
            log.info(
                "rule_run",
                run_id=str(run.id),
                raised=run.raised,
                resolved=run.resolved,
                duration_ms=run.duration_ms,
            )
