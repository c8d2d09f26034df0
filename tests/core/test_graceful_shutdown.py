"""SIGTERM during a request (issue 9): ``ams serve`` stops taking new connections, lets
the request in flight finish with its normal answer, then exits. Runs the real server
process on a free port against the test database; the request is held in flight by a
table lock taken from another connection, so the timing does not depend on load."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import asyncpg
import httpx
import pytest

from app.config import Settings
from app.core.auth import Role
from tests.conftest import make_token, plain_url
from tests.servers import running_server, wait_until

pytestmark = pytest.mark.slow


async def test_sigterm_lets_the_request_in_flight_finish(
    database_url: str, settings: Settings, tmp_path: Path
) -> None:
    plain = plain_url(database_url)
    locker = await asyncpg.connect(plain)
    # Another connection watches: inside the locker's transaction pg_stat_activity would
    # be one snapshot.
    watcher = await asyncpg.connect(plain)
    headers = {"Authorization": f"Bearer {make_token(settings, Role.admin)}"}
    try:
        async with (
            running_server(database_url, tmp_path) as server,
            httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=30) as http,
        ):
            lock = locker.transaction()
            await lock.start()
            await locker.execute("LOCK TABLE clients IN ACCESS EXCLUSIVE MODE")
            in_flight = asyncio.create_task(http.get("/v1/clients"))

            async def blocked() -> bool:
                if in_flight.done():
                    raise AssertionError(f"answered before the lock: {in_flight.result().text}")
                waiting = await watcher.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock'"
                )
                return bool(waiting)

            await wait_until(blocked, 20, "the request to wait on the lock")

            server.process.send_signal(signal.SIGTERM)

            async def refusing() -> bool:
                try:
                    async with httpx.AsyncClient(base_url=server.base_url, timeout=2) as fresh:
                        await fresh.get("/health/live")
                except httpx.ConnectError:
                    return True
                return False

            await wait_until(refusing, 10, "new connections to be refused")
            assert not in_flight.done()

            await lock.rollback()
            response = await in_flight
            assert response.status_code == 200, response.text
            assert response.json()["items"] == []
            returncode = await asyncio.wait_for(server.process.wait(), 25)
            # uvicorn's graceful exit re-raises SIGTERM into ours: 128 + 15, as a shell
            # reports it.
            assert returncode == 128 + signal.SIGTERM, server.output()
    finally:
        await locker.close()
        await watcher.close()
