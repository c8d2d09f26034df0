"""SIGTERM during a request (issue 9): ``ams serve`` stops taking new connections, lets
the request in flight finish with its normal answer, then exits. Runs the real server
process on a free port against the test database; the request is held in flight by a
table lock taken from another connection, so the timing does not depend on load."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from app.config import Settings
from app.core.auth import Role
from tests.conftest import make_token

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _wait_until(check: Callable[[], Awaitable[bool]], within_s: float, what: str) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def test_sigterm_lets_the_request_in_flight_finish(
    database_url: str, settings: Settings, tmp_path: Path
) -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = (tmp_path / "serve.log").open("wb")
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "RULES__SCHEDULE_INTERVAL_S": "0",
        "LOG_LEVEL": "WARNING",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *["-c", "from app.cli import main; main()", "serve", "--host", "127.0.0.1"],
        *["--port", str(port), "--no-migrate"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    plain = make_url(database_url).set(drivername="postgresql").render_as_string(False)
    locker = await asyncpg.connect(plain)
    # Another connection watches: inside the locker's transaction pg_stat_activity would
    # be one snapshot.
    watcher = await asyncpg.connect(plain)
    headers = {"Authorization": f"Bearer {make_token(settings, Role.admin)}"}
    try:
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as http:

            async def live() -> bool:
                try:
                    return (await http.get("/health/live")).status_code == 200
                except httpx.TransportError:
                    return proc.returncode is not None  # stop waiting if it died

            await _wait_until(live, 60, "the server to start")
            assert proc.returncode is None, (tmp_path / "serve.log").read_text()

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

            await _wait_until(blocked, 20, "the request to wait on the lock")

            proc.send_signal(signal.SIGTERM)

            async def refusing() -> bool:
                try:
                    async with httpx.AsyncClient(base_url=base, timeout=2) as fresh:
                        await fresh.get("/health/live")
                except httpx.ConnectError:
                    return True
                return False

            await _wait_until(refusing, 10, "new connections to be refused")
            assert not in_flight.done()

            await lock.rollback()
            response = await in_flight
            assert response.status_code == 200, response.text
            assert response.json()["items"] == []
        returncode = await asyncio.wait_for(proc.wait(), 25)
        # uvicorn's graceful exit re-raises SIGTERM into ours: 128 + 15, as a shell reports.
        assert returncode == 128 + signal.SIGTERM, (tmp_path / "serve.log").read_text()
    finally:
        await locker.close()
        await watcher.close()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        log.close()
