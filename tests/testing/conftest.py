"""The kit's own tests use the kit's fixtures, on the suite's server.

The ``sqlxmq`` plugin is imported here rather than loaded through its entry point, so these
tests run in a checkout whose installed metadata predates the entry point (and, once it is
installed, the fixtures here simply stand for the plugin's). ``sqlxmq_server_dsn`` is the
suite's server; ``sqlxmq_setup_database`` adds the table the test jobs write their effects to.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from sqlxmq_py.testing.plugin import (
    SetupDatabase,
    sqlxmq_aconn,
    sqlxmq_apool,
    sqlxmq_conn,
    sqlxmq_dsn,
    sqlxmq_template_database,
)

pytest_plugins = ["pytester"]

__all__ = [
    "sqlxmq_aconn",
    "sqlxmq_apool",
    "sqlxmq_conn",
    "sqlxmq_dsn",
    "sqlxmq_server_dsn",
    "sqlxmq_setup_database",
    "sqlxmq_template_database",
]


@pytest.fixture(scope="session")
def sqlxmq_server_dsn(server_dsn: str) -> str:
    """The suite's server (``$SQLXMQ_TEST_DSN`` or its embedded one)."""
    return server_dsn


def _setup(conn: psycopg.Connection[Any]) -> None:
    conn.execute("CREATE TABLE kit_effects (job_id uuid, note text)")


@pytest.fixture(scope="session")
def sqlxmq_setup_database() -> SetupDatabase:
    """The tests' own schema, added to the template once."""
    return _setup
