"""migrate(): applies the packaged migrations once, safely under concurrency, and refuses a
migration file that changed after it was applied."""

from __future__ import annotations

import threading

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from sqlxmq_py import MigrationError, migrate, migration_script
from sqlxmq_py.migrate import load_migrations


def _applied(dsn: str) -> list[str]:
    with psycopg.connect(dsn) as c:
        return [r[0] for r in c.execute("SELECT name FROM mq_migrations ORDER BY name")]


def test_migrate_applies_everything_once(empty_dsn: str) -> None:
    names = [m.name for m in load_migrations()]
    with psycopg.connect(empty_dsn, autocommit=True) as c:
        assert migrate(c) == names
        assert migrate(c) == []
    assert _applied(empty_dsn) == names


def test_migrate_on_a_non_autocommit_connection_joins_the_caller_transaction(
    empty_dsn: str,
) -> None:
    with psycopg.connect(empty_dsn) as c:
        c.execute("SELECT 1")  # the caller's transaction is open
        migrate(c)
        c.rollback()
    with psycopg.connect(empty_dsn) as c:
        assert c.execute("SELECT to_regclass('mq_jobs')").fetchone() == (None,)


async def test_migrate_async_connection_and_pool(empty_dsn: str) -> None:
    async with await psycopg.AsyncConnection.connect(empty_dsn, autocommit=True) as c:
        assert await migrate(c) != []
    async with AsyncConnectionPool(empty_dsn, open=False) as p:
        assert await migrate(p) == []


def test_concurrent_migrate_calls_are_safe(empty_dsn: str) -> None:
    results: list[list[str]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def run() -> None:
        try:
            with psycopg.connect(empty_dsn, autocommit=True) as c:
                barrier.wait()
                results.append(migrate(c))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    applied = [r for r in results if r]
    assert len(applied) == 1  # exactly one caller applied them; the rest found nothing to do
    every = sorted(name for names in results for name in names)
    assert every == [m.name for m in load_migrations()]


def test_migrate_refuses_a_changed_file(dsn: str) -> None:
    first = load_migrations()[0]
    with psycopg.connect(dsn, autocommit=True) as c:
        # the database remembers the checksum of the file as it was when applied
        c.execute("UPDATE mq_migrations SET checksum = %s WHERE name = %s", ("0" * 64, first.name))
        with pytest.raises(MigrationError, match=first.name):
            migrate(c)


def test_a_failing_migration_raises_migration_error_naming_it(empty_dsn: str) -> None:
    with psycopg.connect(empty_dsn, autocommit=True) as c:
        c.execute("CREATE TABLE mq_jobs (x int)")  # the first migration cannot create it now
        with pytest.raises(MigrationError, match=load_migrations()[0].name):
            migrate(c)
        # one transaction: nothing of the failed run is left, not even the version table
        assert c.execute("SELECT to_regclass('mq_migrations')").fetchone() == (None,)
        assert not c.info.transaction_status  # the connection is usable (idle)


def test_migration_script_builds_the_same_schema(empty_dsn: str, dsn: str) -> None:
    with psycopg.connect(empty_dsn, autocommit=True) as c:
        c.execute(migration_script().encode())
        assert migrate(c) == []  # the script recorded itself
    assert _applied(empty_dsn) == _applied(dsn)
