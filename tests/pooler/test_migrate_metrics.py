"""Session state behind PgBouncer in transaction mode: migrate() leaves no advisory lock on a
pooled server session (issue 9.19), a metrics scrape no statement_timeout (issue 9.20)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from prometheus_client import CollectorRegistry

from sqlxmq_py import job, migrate, spawn_many
from sqlxmq_py.metrics import QueueCollector
from sqlxmq_py.migrate import load_migrations

from .conftest import StartPgBouncer

ALL = [m.name for m in load_migrations()]


def advisory_locks(direct_dsn: str) -> list[tuple[Any, ...]]:
    """The advisory locks held or awaited in the database (not the server's: other test
    databases migrate concurrently)."""
    with psycopg.connect(direct_dsn, autocommit=True) as db:
        return db.execute(
            "SELECT pid, objid, granted FROM pg_locks WHERE locktype = 'advisory' "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ).fetchall()


def migrate_through(dsn: str, start: threading.Barrier | None = None) -> list[str]:
    with psycopg.connect(dsn, prepare_threshold=None) as conn:
        if start is not None:
            start.wait(30)
        applied = migrate(conn)
        conn.commit()
        return applied


def recorded(direct_dsn: str) -> list[str]:
    with psycopg.connect(direct_dsn, autocommit=True) as db:
        return [r[0] for r in db.execute("SELECT name FROM mq_migrations ORDER BY name")]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("pool_size", [1, 2])
def test_migrate_twice_in_a_row_through_a_transaction_pooler(
    pgbouncer: StartPgBouncer, empty_dsn: str, pool_size: int
) -> None:
    bouncer = pgbouncer(target=empty_dsn, pool_size=pool_size)
    assert migrate_through(bouncer.dsn) == ALL
    assert advisory_locks(empty_dsn) == []
    assert migrate_through(bouncer.dsn) == []
    assert migrate_through(bouncer.dsn) == []
    assert advisory_locks(empty_dsn) == []
    assert recorded(empty_dsn) == ALL


@pytest.mark.timeout(120)
@pytest.mark.parametrize("pool_size", [1, 2])
def test_migrate_concurrently_through_a_transaction_pooler(
    pgbouncer: StartPgBouncer, empty_dsn: str, pool_size: int
) -> None:
    bouncer = pgbouncer(target=empty_dsn, pool_size=pool_size)
    start = threading.Barrier(2)
    with ThreadPoolExecutor(2) as threads:
        calls = [threads.submit(migrate_through, bouncer.dsn, start) for _ in range(2)]
        results = sorted((call.result(timeout=60) for call in calls), key=len)
    assert results == [[], ALL]  # one applied everything, the other waited and found nothing
    assert migrate_through(bouncer.dsn) == []
    assert advisory_locks(empty_dsn) == []
    assert recorded(empty_dsn) == ALL


@job(channel_name="mail")
async def mail(current_job: Any) -> None:
    pass


@pytest.mark.timeout(60)
def test_a_metrics_scrape_leaves_no_statement_timeout_on_the_pooled_session(
    pgbouncer: StartPgBouncer, dsn: str, conn: psycopg.Connection[Any]
) -> None:
    spawn_many(conn, [mail.builder() for _ in range(3)])
    conn.commit()
    with psycopg.connect(dsn, autocommit=True) as direct:
        row = direct.execute("SHOW statement_timeout").fetchone()
        assert row is not None
        server_default = row[0]
    assert server_default == "0"
    bouncer = pgbouncer(pool_size=1)  # one server session: the scrape's and the next client's
    timeout = 1.0
    registry = CollectorRegistry()
    registry.register(QueueCollector(bouncer.dsn, timeout=timeout))
    for _ in range(3):
        assert registry.get_sample_value("sqlxmq_queue_up") == 1
        assert (
            registry.get_sample_value("sqlxmq_queue_jobs", {"channel": "mail", "state": "ready"})
            == 3
        )
    with psycopg.connect(bouncer.dsn, autocommit=True, prepare_threshold=None) as client:
        row = client.execute("SHOW statement_timeout").fetchone()
        assert row is not None
        assert row[0] == server_default
        # the workload: longer than the scrape's timeout, and not cancelled
        client.execute("SELECT pg_sleep(%s)", (timeout + 1,))
        with client.transaction():
            row = client.execute("SHOW statement_timeout").fetchone()
            assert row is not None
            assert row[0] == server_default
        client.execute("SELECT pg_sleep(%s)", (timeout + 1,))
