"""run_pending(): drain() for sync tests, on a sync connection in the test's transaction."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from sqlxmq_py import JobRegistry
from sqlxmq_py.testing import assert_spawned, refute_spawned, run_pending

from .jobs import CONNECTIONS, Email, Greeting, boom, greet, publish, send, threaded_sql

REGISTRY = JobRegistry([threaded_sql, greet, publish, boom, send]).set_context(Greeting("Hi"))


def test_thread_jobs_share_the_tests_connection_and_transaction(
    sqlxmq_conn: psycopg.Connection[Any], sqlxmq_dsn: str
) -> None:
    CONNECTIONS["test"] = sqlxmq_conn
    try:
        job_id = threaded_sql.builder().set_json({"conn": "test"}).spawn(sqlxmq_conn)
        greeted = greet.builder().set_json({"name": "Ada"}).spawn(sqlxmq_conn)
        ran = run_pending(sqlxmq_conn, REGISTRY)
    finally:
        del CONNECTIONS["test"]
    assert sorted((r.id, r.outcome, r.result) for r in ran) == sorted(
        [(job_id, "completed", None), (greeted, "completed", "Hi, Ada")]
    )
    # completed with its write, inside the test's transaction: seen here, not outside
    assert sqlxmq_conn.execute("SELECT job_id FROM kit_effects").fetchall() == [(job_id,)]
    refute_spawned(sqlxmq_conn, threaded_sql)
    with psycopg.connect(sqlxmq_dsn, autocommit=True) as outside:
        assert outside.execute("SELECT count(*) FROM kit_effects").fetchone() == (0,)
    sqlxmq_conn.rollback()
    assert sqlxmq_conn.execute("SELECT count(*) FROM mq_jobs").fetchone() == (0,)


def test_failures_retries_and_continuations_as_in_drain(
    sqlxmq_conn: psycopg.Connection[Any],
) -> None:
    parent = greet.builder().set_json({"name": "Bob"}).spawn(sqlxmq_conn)
    boom.builder().set_after([parent]).spawn(sqlxmq_conn)
    ran = run_pending(sqlxmq_conn, REGISTRY)
    assert [(r.name, r.outcome) for r in ran] == [(greet.name, "completed"), (boom.name, "failed")]
    assert assert_spawned(sqlxmq_conn, boom).state == "failed"


def test_an_async_job_needing_the_pool_is_told_to_use_drain(
    sqlxmq_conn: psycopg.Connection[Any],
) -> None:
    send.builder().set_json(Email("ada@example.com")).spawn(sqlxmq_conn)
    (ran,) = run_pending(sqlxmq_conn, REGISTRY)
    assert ran.outcome == "retrying"
    assert ran.error is not None
    assert ran.error.startswith("ConfigurationError: current_job.pool is not available")
    assert "await drain(aconn, registry)" in ran.error.splitlines()[0]


async def test_run_pending_refuses_to_block_a_running_loop(
    sqlxmq_conn: psycopg.Connection[Any],
) -> None:
    with pytest.raises(RuntimeError, match="await drain"):
        run_pending(sqlxmq_conn, REGISTRY)
