"""In-process schedule of rule runs (``RULES__SCHEDULE_INTERVAL_S``; 0 turns it off).

Every replica runs the loop; the engine's advisory lock lets only one evaluate at a
time, the others skip that tick.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from app.config import Settings
from app.core.errors import Conflict
from app.rules.engine import run_rules

log = structlog.get_logger("app.rules.scheduler")


async def run_on_schedule(settings: Settings, sessionmaker: Any) -> None:
    """Sleep, run, repeat until cancelled; failures are logged and the loop goes on."""
    interval = settings.rules.schedule_interval_s
    while True:
        await asyncio.sleep(interval)
        try:
            async with sessionmaker.begin() as session:
                run = await run_rules(
                    session,
                    as_of=None,
                    time_zone=settings.org.time_zone,
                    trigger="scheduler",
                    actor="scheduler",
                    wait=False,
                    statement_timeout_ms=settings.rules.statement_timeout_ms,
                )
            log.info(
                "rule_run",
                run_id=str(run.id),
                raised=run.raised,
                resolved=run.resolved,
                duration_ms=run.duration_ms,
            )
        except Conflict:
            log.info("rule_run_skipped", reason="another replica is running the rules")
        except Exception:  # keep the schedule alive; the failure is in the log
            log.exception("rule_run_failed")
