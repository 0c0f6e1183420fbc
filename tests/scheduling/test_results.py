"""Results and status: job_status in every state, results kept with the history, and
wait_for_result (sync and async) woken by NOTIFY."""

from __future__ import annotations

import asyncio
import threading
import uuid
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from sqlxmq_py import (
    BlockingCurrentJob,
    ConfigurationError,
    CurrentJob,
    JobCancelledError,
    JobFailedError,
    JobNotFoundError,
    JobRegistry,
    job,
)
from sqlxmq_py.admin import cancel, job_status
from sqlxmq_py.pull import complete, fail, fetch
from sqlxmq_py.results import wait_for_result

from ..helpers import Runner, job_row, result_awaited, wait_until
from ._util import history_row


@job
async def plain(current_job: CurrentJob) -> None:
    pass


def _status(db: psycopg.Connection[Any], job_id: uuid.UUID) -> Any:
    status = job_status(db, job_id)
    assert status is not None
    return status


def test_job_status_in_every_state(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    uncommitted = plain.builder().set_commit_interval(60).spawn(conn)
    scheduled = plain.builder().set_delay(timedelta(hours=1)).spawn(conn)
    blocked_head = plain.builder().set_ordered().set_channel_name("chain").spawn(conn)
    blocked = plain.builder().set_ordered().set_channel_name("chain").spawn(conn)
    waiting = plain.builder().set_after([scheduled]).spawn(conn)
    ready = plain.builder().set_channel_name("ready").set_priority(4).spawn(conn)
    running = plain.builder().set_channel_name("running").spawn(conn)
    retrying = plain.builder().set_channel_name("retrying").spawn(conn)
    failed = plain.builder().set_channel_name("failed").set_retries(0).spawn(conn)
    completed = plain.builder().set_channel_name("completed").spawn(conn)
    cancelled = plain.builder().set_delay(3600).spawn(conn)
    conn.commit()
    (_leased,) = fetch(conn, ["running"])
    (to_retry,) = fetch(conn, ["retrying"])
    assert fail(conn, to_retry, "try again", delay=timedelta(hours=1)) == "retrying"
    (to_fail,) = fetch(conn, ["failed"])
    assert fail(conn, to_fail, RuntimeError("broken")) == "failed"
    (to_complete,) = fetch(conn, ["completed"])
    complete(conn, to_complete, {"answer": 42}, retain_for=timedelta(hours=1))
    assert cancel(conn, [cancelled], "changed my mind") == {cancelled: "cancelled"}
    conn.commit()

    expected = {
        uncommitted: "uncommitted",
        scheduled: "scheduled",
        blocked_head: "ready",
        blocked: "waiting",
        waiting: "waiting",
        ready: "ready",
        running: "running",
        retrying: "retrying",
        failed: "failed",
        completed: "completed",
        cancelled: "cancelled",
    }
    assert {job_id: _status(db, job_id).state for job_id in expected} == expected
    assert job_status(db, uuid.uuid4()) is None

    r = _status(db, ready)
    assert (r.name, r.channel_name, r.priority, r.attempts, r.max_attempts) == (
        plain.name,
        "ready",
        4,
        0,
        5,
    )
    assert r.finished_at is None
    assert r.run_at is not None
    assert r.created_at <= r.run_at
    s = _status(db, running)
    assert s.attempts == 1
    assert s.run_at > s.created_at  # the lease's end
    assert not s.cancel_requested
    s = _status(db, retrying)
    assert (s.attempts, s.last_error) == (1, "try again")
    s = _status(db, failed)
    assert s.last_error == "RuntimeError: broken"
    s = _status(db, completed)
    assert s.result == {"answer": 42}
    assert s.finished_at is not None
    assert s.run_at is None
    s = _status(db, cancelled)
    assert s.last_error == "changed my mind"


async def test_job_status_with_an_async_connection(
    aconn: psycopg.AsyncConnection[Any], apool: AsyncConnectionPool[Any]
) -> None:
    job_id = await plain.builder().set_delay(60).spawn(aconn)
    await aconn.commit()
    status = await job_status(apool, job_id)
    assert status is not None
    assert status.state == "scheduled"


async def test_a_kept_job_stores_its_return_value(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    @job(retain_for=timedelta(minutes=5))
    async def answer(current_job: CurrentJob) -> dict[str, Any]:
        return {"answer": current_job.json() * 2}

    @job
    async def not_kept(current_job: CurrentJob) -> int:
        return 1

    @job
    async def builder_kept(current_job: CurrentJob) -> list[int]:
        return [1, 2]

    kept_id = answer.builder().set_json(21).spawn(conn)
    dropped_id = not_kept.builder().spawn(conn)
    builder_id = builder_kept.builder().set_retain_for(60).spawn(conn)
    conn.commit()
    async with runner([answer, not_kept, builder_kept]):
        await wait_until(
            lambda: all(job_row(db, i) is None for i in (kept_id, dropped_id, builder_id))
        )
    assert _status(db, kept_id).result == {"answer": 42}
    assert _status(db, builder_id).result == [1, 2]
    assert job_status(db, dropped_id) is None
    kept = history_row(db, kept_id)
    assert kept is not None
    assert kept["state"] == "completed"
    assert kept["payload_text"] == "21"


async def test_the_registry_default_keeps_results(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    @job
    async def value(current_job: CurrentJob) -> str:
        return "kept"

    @job(retain_for=0)
    async def opted_out(current_job: CurrentJob) -> str:
        return "dropped"

    ids = [value.builder().spawn(conn), opted_out.builder().spawn(conn)]
    conn.commit()
    registry = JobRegistry([value, opted_out]).set_retain_for(timedelta(minutes=5))
    async with runner(registry):
        await wait_until(lambda: all(job_row(db, i) is None for i in ids))
    assert _status(db, ids[0]).result == "kept"
    assert job_status(db, ids[1]) is None


async def test_complete_in_the_jobs_transaction_stores_the_result(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    @job(retain_for=timedelta(minutes=5))
    async def transactional(current_job: CurrentJob) -> None:
        async with current_job.pool.connection() as own, own.transaction():
            await current_job.complete(own, result={"written": True})

    @job(retain_for=timedelta(minutes=5))
    def threaded(current_job: BlockingCurrentJob) -> None:
        current_job.complete(result="from a thread")

    ids = [transactional.builder().spawn(conn), threaded.builder().spawn(conn)]
    conn.commit()
    async with runner([transactional, threaded]):
        await wait_until(lambda: all(job_row(db, i) is None for i in ids))
    assert _status(db, ids[0]).result == {"written": True}
    assert _status(db, ids[1]).result == "from a thread"


async def test_wait_for_result_async_with_a_pool_and_a_connection(
    conn: psycopg.Connection[Any], apool: AsyncConnectionPool[Any], dsn: str, runner: Runner
) -> None:
    release = asyncio.Event()

    @job(retain_for=timedelta(minutes=5))
    async def compute(current_job: CurrentJob) -> dict[str, int]:
        await release.wait()
        return {"sum": sum(current_job.json())}

    first = compute.builder().set_json([1, 2, 3]).spawn(conn)
    second = compute.builder().set_json([4, 5]).spawn(conn)
    conn.commit()
    async with (
        runner([compute]),
        await psycopg.AsyncConnection.connect(dsn, autocommit=True) as waiter,
    ):
        by_pool = asyncio.create_task(wait_for_result(apool, first, timeout=10))
        by_conn = asyncio.create_task(wait_for_result(waiter, second, timeout=10))
        await asyncio.sleep(0)
        release.set()
        assert await by_pool == {"sum": 6}
        assert await by_conn == {"sum": 9}
    # a finished job's result is returned at once
    assert await wait_for_result(apool, first, timeout=1) == {"sum": 6}


async def test_wait_for_result_sync_with_a_pool_and_a_connection(
    conn: psycopg.Connection[Any], pool: ConnectionPool[Any], dsn: str, runner: Runner
) -> None:
    release = threading.Event()

    @job(retain_for=timedelta(minutes=5))
    def compute(current_job: BlockingCurrentJob) -> str:
        release.wait(10)
        return f"hello {current_job.json()}"

    first = compute.builder().set_json("pool").spawn(conn)
    second = compute.builder().set_json("conn").spawn(conn)
    conn.commit()

    def wait_with_connection() -> Any:
        with psycopg.connect(dsn, autocommit=True) as waiter:
            return wait_for_result(waiter, second, timeout=10)

    async with runner([compute]):
        by_pool = asyncio.create_task(asyncio.to_thread(wait_for_result, pool, first, timeout=10))
        by_conn = asyncio.create_task(asyncio.to_thread(wait_with_connection))
        release.set()
        assert await by_pool == "hello pool"
        assert await by_conn == "hello conn"


async def test_wait_for_result_of_a_job_that_runs_without_retain_for(
    conn: psycopg.Connection[Any],
    db: psycopg.Connection[Any],
    apool: AsyncConnectionPool[Any],
    runner: Runner,
) -> None:
    """Waiting for a job keeps its result even if it does not ask to be kept (wait first, the
    runner leases it afterwards)."""

    @job
    async def unkept(current_job: CurrentJob) -> int:
        return 7

    job_id = unkept.builder().spawn(conn)
    conn.commit()
    waiting = asyncio.create_task(wait_for_result(apool, job_id, timeout=10))
    await wait_until(lambda: result_awaited(db, job_id))
    async with runner([unkept]):
        assert await waiting == 7


async def test_wait_for_result_of_a_job_already_running_when_the_wait_began(
    conn: psycopg.Connection[Any],
    db: psycopg.Connection[Any],
    apool: AsyncConnectionPool[Any],
    runner: Runner,
) -> None:
    """A caller that waits for a job the runner has already leased (the common case: spawn,
    commit, wait) gets the job's return value, not None."""
    started = asyncio.Event()
    release = asyncio.Event()

    @job
    async def already_running(current_job: CurrentJob) -> dict[str, str]:
        started.set()
        await release.wait()
        return {"status": "done"}

    job_id = already_running.builder().spawn(conn)
    conn.commit()
    async with runner([already_running]):
        await asyncio.wait_for(started.wait(), 10)
        waiting = asyncio.create_task(wait_for_result(apool, job_id, timeout=10))
        await wait_until(lambda: result_awaited(db, job_id))
        release.set()
        assert await waiting == {"status": "done"}


async def test_wait_for_result_raises_for_failed_and_cancelled_jobs(
    conn: psycopg.Connection[Any],
    db: psycopg.Connection[Any],
    apool: AsyncConnectionPool[Any],
    runner: Runner,
) -> None:
    @job(retries=1, backoff=0)
    async def broken(current_job: CurrentJob) -> None:
        raise ValueError(f"attempt {current_job.attempt} broke")

    failing = broken.builder().spawn(conn)
    later = broken.builder().set_delay(timedelta(hours=1)).spawn(conn)
    conn.commit()
    async with runner([broken]):
        with pytest.raises(JobFailedError, match="attempt 2 broke"):
            await wait_for_result(apool, failing, timeout=10)
    waiting = asyncio.create_task(wait_for_result(apool, later, timeout=10))
    await wait_until(lambda: result_awaited(db, later))
    cancel(conn, [later], "no longer needed")
    conn.commit()
    with pytest.raises(JobCancelledError, match="no longer needed"):
        await waiting


async def test_wait_for_result_times_out_and_reports_unknown_jobs(
    conn: psycopg.Connection[Any],
    db: psycopg.Connection[Any],
    apool: AsyncConnectionPool[Any],
    pool: ConnectionPool[Any],
    runner: Runner,
) -> None:
    job_id = plain.builder().spawn(conn)
    conn.commit()
    with pytest.raises(TimeoutError):
        await wait_for_result(apool, job_id, timeout=0.3)
    # it waited for this job (registered its interest), which is still unfinished
    assert result_awaited(db, job_id)
    assert _status(db, job_id).state == "ready"
    with pytest.raises(TimeoutError):
        await asyncio.to_thread(wait_for_result, pool, job_id, timeout=0.3)
    with pytest.raises(JobNotFoundError):
        await wait_for_result(apool, uuid.uuid4(), timeout=1)
    # completed without retain_for before anyone waited: gone
    unwaited = plain.builder().spawn(conn)
    conn.commit()
    async with runner([plain]):
        await wait_until(lambda: job_row(db, unwaited) is None)
    assert job_status(db, unwaited) is None
    with pytest.raises(JobNotFoundError):
        await wait_for_result(apool, unwaited, timeout=1)
    # the job someone waited for (and timed out on) is kept, with its result
    assert await wait_for_result(apool, job_id, timeout=1) is None
    assert _status(db, job_id).state == "completed"


async def test_wait_for_result_needs_autocommit(
    conn: psycopg.Connection[Any], aconn: psycopg.AsyncConnection[Any]
) -> None:
    with pytest.raises(ConfigurationError, match="autocommit"):
        wait_for_result(conn, uuid.uuid4(), timeout=1)
    with pytest.raises(ConfigurationError, match="autocommit"):
        await wait_for_result(aconn, uuid.uuid4(), timeout=1)
    with pytest.raises(ConfigurationError, match="job_id"):
        wait_for_result(conn, "not-an-id", timeout=1)  # type: ignore[arg-type]
