"""Test databases: a template migrated once per session, a fresh clone for every test.

``SQLXMQ_TEST_DSN`` names the server; without it the embedded PostgreSQL is started in a temporary
directory. A missing server is an error, never a skip.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from sqlxmq_py import JobRegistry, NamedJob, embedded, migrate

from .helpers import Runner, running
from .processes import Processes, started_processes


def _admin(dsn: str) -> psycopg.Connection[Any]:
    return psycopg.connect(dsn, autocommit=True)


@pytest.fixture(scope="session")
def server_dsn() -> Iterator[str]:
    """A maintenance DSN of the server the tests run against."""
    dsn = os.environ.get("SQLXMQ_TEST_DSN")
    if dsn:
        yield dsn
        return
    # a directory of its own, not under pytest's basetemp, which other pytest sessions on the
    # machine rotate (and delete) while this one runs
    data_dir = Path(tempfile.mkdtemp(prefix="sqlxmq-test-")) / "pgdata"
    try:
        dsn = embedded.start(data_dir)
        with _admin(dsn) as conn:
            conn.execute("SELECT 1")
        yield dsn
    finally:
        embedded.stop(data_dir)
        shutil.rmtree(data_dir.parent, ignore_errors=True)


@pytest.fixture(scope="session")
def server_version(server_dsn: str) -> int:
    with _admin(server_dsn) as conn:
        return conn.info.server_version


@pytest.fixture(scope="session")
def template_db(server_dsn: str) -> Iterator[str]:
    """A database with the schema migrated, cloned for each test."""
    name = f"sqlxmq_tpl_{uuid.uuid4().hex[:10]}"
    with _admin(server_dsn) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        with _admin(make_conninfo(server_dsn, dbname=name)) as conn:
            migrate(conn)
        yield name
    finally:
        with _admin(server_dsn) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def _create_db(server_dsn: str, template: str | None) -> str:
    name = f"sqlxmq_test_{uuid.uuid4().hex[:12]}"
    with _admin(server_dsn) as conn:
        if template is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        else:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(template)
                )
            )
    return name


def _drop_db(server_dsn: str, name: str) -> None:
    with _admin(server_dsn) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture(scope="session")
def app_role(server_dsn: str) -> Iterator[str | None]:
    """With ``SQLXMQ_TEST_AS_APP_ROLE=1``, a login role (no superuser) that tests connect as,
    holding only what ``mq_grant_usage`` grants; otherwise None (tests use the server's role)."""
    if os.environ.get("SQLXMQ_TEST_AS_APP_ROLE") != "1":
        yield None
        return
    role = f"sqlxmq_app_{uuid.uuid4().hex[:8]}"
    with _admin(server_dsn) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER").format(sql.Identifier(role)))
    try:
        yield role
    finally:
        with _admin(server_dsn) as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


@pytest.fixture
def owner_dsn(server_dsn: str, template_db: str) -> Iterator[str]:
    """A fresh database with the schema, for this test only, as the role that owns it."""
    name = _create_db(server_dsn, template_db)
    try:
        yield make_conninfo(server_dsn, dbname=name)
    finally:
        _drop_db(server_dsn, name)


@pytest.fixture
def dsn(owner_dsn: str, app_role: str | None) -> str:
    """The test's database (see ``owner_dsn``), as the app role when there is one."""
    if app_role is None:
        return owner_dsn
    with _admin(owner_dsn) as conn:
        conn.execute("SELECT mq_grant_usage(%s)", (app_role,))
        # for the tables tests make for their jobs' effects (the library needs no such right:
        # tests/test_least_privilege.py checks it with mq_grant_usage alone)
        conn.execute(
            sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(sql.Identifier(app_role))
        )
    return make_conninfo(owner_dsn, user=app_role)


@pytest.fixture
def empty_dsn(server_dsn: str) -> Iterator[str]:
    """A fresh database without the schema."""
    name = _create_db(server_dsn, None)
    try:
        yield make_conninfo(server_dsn, dbname=name)
    finally:
        _drop_db(server_dsn, name)


@pytest.fixture
def conn(dsn: str) -> Iterator[psycopg.Connection[Any]]:
    """A sync connection (not autocommit) to the test database."""
    with psycopg.connect(dsn) as connection:
        yield connection


@pytest.fixture
async def aconn(dsn: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """An async connection (not autocommit) to the test database."""
    async with await psycopg.AsyncConnection.connect(dsn) as connection:
        yield connection


@pytest.fixture
def pool(dsn: str) -> Iterator[ConnectionPool[Any]]:
    with ConnectionPool(dsn, min_size=1, max_size=4, open=False) as p:
        p.wait()
        yield p


@pytest.fixture
async def apool(dsn: str) -> AsyncIterator[AsyncConnectionPool[Any]]:
    async with AsyncConnectionPool(dsn, min_size=1, max_size=8, open=False) as p:
        await p.wait()
        yield p


@pytest.fixture
def db(dsn: str) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection for inspecting the test database."""
    with _admin(dsn) as connection:
        yield connection


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def is_embedded(server_dsn: str) -> bool:
    host = conninfo_to_dict(server_dsn).get("host", "")
    return str(host).startswith("/")


@pytest.fixture
def runner(dsn: str) -> Runner:
    """``async with runner([jobs] or registry, **options) as handle:`` runs a runner on the test
    database (options of :func:`tests.helpers.running`), stopped when the block ends."""

    def make(jobs: list[NamedJob[..., Any]] | JobRegistry, **options: Any) -> Any:
        return running(dsn, jobs, **options)

    return make


@pytest.fixture
def processes() -> Iterator[Processes]:
    """Starts subprocesses (:class:`tests.processes.Processes`); every one still running when
    the test ends is killed, and its output pipes are closed."""
    with started_processes() as started:
        yield started
