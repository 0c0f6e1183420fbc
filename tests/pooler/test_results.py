"""wait_for_result without LISTEN (issue 9.21): behind PgBouncer in transaction mode it polls,
returns the result of a job a runner completes, and leaves no LISTEN on a pooled server
session; directly, the notification path still works."""

from __future__ import annotations

import asyncio
import threading
import uuid
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from sqlxmq_py import BlockingCurrentJob, CurrentJob, job
from sqlxmq_py import results as results_module
from sqlxmq_py.results import wait_for_result

from ..helpers import running, wait_until
from .conftest import StartPgBouncer, server_sessions


def registered(db: psycopg.Connection[Any], job_id: uuid.UUID) -> bool:
    """Whether a wait_for_result caller has registered its interest in the job."""
    row = db.execute("SELECT notify_done FROM mq_payloads WHERE id = %s", (job_id,)).fetchone()
    return row == (True,)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("timeout", [30.0, None])
@pytest.mark.parametrize("threshold", [None, 0])
async def test_wait_for_result_through_a_transaction_pooler_returns_the_result(
    pgbouncer: StartPgBouncer,
    db: psycopg.Connection[Any],
    timeout: float | None,
    threshold: int | None,
) -> None:
    """No notification can arrive through the pooler: the status re-reads end the wait. With
    ``threshold`` 0 the waiters' pools prepare every statement at once (the worst an application
    can do behind a transaction pooler): the wait's own statements must not. (The jobs are
    spawned as the README says, on a connection with prepare_threshold=None.)"""
    bouncer = pgbouncer(pool_size=2)
    release = asyncio.Event()
    thread_release = threading.Event()

    @job(retain_for=timedelta(minutes=5))
    async def compute(current_job: CurrentJob) -> dict[str, int]:
        await release.wait()
        return {"sum": sum(current_job.json())}

    @job(retain_for=timedelta(minutes=5))
    def compute_in_thread(current_job: BlockingCurrentJob) -> str:
        thread_release.wait(30)
        return f"hello {current_job.json()}"

    async with (
        AsyncConnectionPool(
            bouncer.dsn, kwargs={"prepare_threshold": threshold}, open=False
        ) as apool,
        running(bouncer.dsn, [compute, compute_in_thread]),
    ):
        await apool.wait()
        with psycopg.connect(bouncer.dsn, autocommit=True, prepare_threshold=None) as spawner:
            first = compute.builder().set_json([1, 2, 3]).spawn(spawner)
            second = compute_in_thread.builder().set_json("pool").spawn(spawner)
        with ConnectionPool(
            bouncer.dsn, kwargs={"prepare_threshold": threshold}, min_size=1, open=False
        ) as pool:
            pool.wait()
            waits = [
                asyncio.create_task(wait_for_result(apool, first, timeout=timeout)),
                asyncio.create_task(
                    asyncio.to_thread(wait_for_result, pool, second, timeout=timeout)
                ),
            ]
            await wait_until(lambda: registered(db, first) and registered(db, second))
            release.set()
            thread_release.set()
            assert await waits[0] == {"sum": 6}
            assert await waits[1] == "hello pool"
            # finished: returned at once, and again (statements that psycopg would have
            # prepared by now, on a connection whose next statement may run elsewhere)
            for _ in range(8):
                assert await wait_for_result(apool, first, timeout=timeout) == {"sum": 6}
                assert wait_for_result(pool, second, timeout=timeout) == "hello pool"
    listening = [channel for _, channels in server_sessions(bouncer) for channel in channels]
    assert "mq_done" not in listening


@pytest.mark.timeout(60)
async def test_wait_for_result_behind_a_pooler_does_not_listen(
    pgbouncer: StartPgBouncer, db: psycopg.Connection[Any]
) -> None:
    """A LISTEN through a transaction pooler lands on whichever server session the pooler lends
    and stays there (the UNLISTEN may run on another): wait_for_result does not LISTEN at all
    behind a pooler, while waiting or after."""
    bouncer = pgbouncer(pool_size=1)  # one server session: a LISTEN would be on it
    release = asyncio.Event()

    @job(retain_for=timedelta(minutes=5))
    async def slow(current_job: CurrentJob) -> int:
        await release.wait()
        return 7

    async with (
        AsyncConnectionPool(bouncer.dsn, kwargs={"prepare_threshold": None}, open=False) as apool,
        running(bouncer.dsn, [slow]),
    ):
        await apool.wait()
        job_id = await slow.builder().spawn(apool)
        waiting = asyncio.create_task(wait_for_result(apool, job_id, timeout=30))
        await wait_until(lambda: registered(db, job_id))
        async with apool.connection() as other:
            await other.set_autocommit(True)
            cur = await other.execute("SELECT array(SELECT pg_listening_channels())")
            row = await cur.fetchone()
            assert row is not None
            assert "mq_done" not in row[0]
        release.set()
        assert await waiting == 7
    assert all("mq_done" not in channels for _, channels in server_sessions(bouncer))


@pytest.mark.timeout(60)
async def test_wait_for_result_directly_is_woken_by_the_notification(
    dsn: str, db: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a pooler the notification still wakes the wait: with the status re-reads pushed
    out past the test's timeout, only the notification can end it."""
    monkeypatch.setattr(results_module, "POLL_FIRST", 3600.0)
    monkeypatch.setattr(results_module, "POLL_MAX", 3600.0)
    release = asyncio.Event()
    thread_release = threading.Event()

    @job(retain_for=timedelta(minutes=5))
    async def compute(current_job: CurrentJob) -> int:
        await release.wait()
        return 42

    @job(retain_for=timedelta(minutes=5))
    def compute_in_thread(current_job: BlockingCurrentJob) -> int:
        thread_release.wait(30)
        return 43

    async with (
        AsyncConnectionPool(dsn, open=False) as apool,
        running(dsn, [compute, compute_in_thread]),
    ):
        await apool.wait()
        first = await compute.builder().spawn(apool)
        second = await compute_in_thread.builder().spawn(apool)
        with ConnectionPool(dsn, min_size=1, open=False) as pool:
            pool.wait()
            by_async = asyncio.create_task(wait_for_result(apool, first, timeout=None))
            by_sync = asyncio.create_task(
                asyncio.to_thread(wait_for_result, pool, second, timeout=None)
            )
            await wait_until(lambda: registered(db, first) and registered(db, second))
            release.set()
            thread_release.set()
            assert await by_async == 42
            assert await by_sync == 43
