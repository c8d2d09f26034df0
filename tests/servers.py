"""Run ``ams serve`` as a real process on a free loopback port, for tests of process-level
behaviour (signals, several replicas on one database)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx


@dataclass
class Server:
    """A running ``ams serve``: its base URL, process and combined stdout/stderr log."""

    base_url: str
    process: asyncio.subprocess.Process
    log: Path

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_until(check: Callable[[], Awaitable[bool]], within_s: float, what: str) -> None:
    """Poll ``check`` every 0.1 s; AssertionError naming ``what`` after ``within_s``."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@asynccontextmanager
async def running_server(
    database_url: str, log_dir: Path, name: str = "serve", **env: str
) -> AsyncIterator[Server]:
    """Start ``ams serve --no-migrate`` on ``database_url`` (already migrated) with extra
    environment ``env``; wait for ``/health/live``; kill it on exit if still running."""
    port = _free_port()
    log = log_dir / f"{name}.log"
    environment = {
        **os.environ,
        "DATABASE_URL": database_url,
        "RULES__SCHEDULE_INTERVAL_S": "0",
        "LOG_LEVEL": "WARNING",
        **env,
    }
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *["-c", "from app.cli import main; main()", "serve", "--host", "127.0.0.1"],
            *["--port", str(port), "--no-migrate"],
            env=environment,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    server = Server(f"http://127.0.0.1:{port}", process, log)
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=5) as http:

            async def live() -> bool:
                if process.returncode is not None:
                    raise AssertionError(f"{name} exited early:\n{server.output()}")
                try:
                    return (await http.get("/health/live")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_until(live, 60, f"{name} to start")
        yield server
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
