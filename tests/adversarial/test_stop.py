"""Issue 9.26: stopping a runner while work it cannot interrupt still runs. A lease may be handed
back only when nothing runs the job any more: a thread job still running at the stop timeout
keeps its lease (renewed) until it returns; an async job that swallows cancellation keeps its
lease until the lease expires; a ``sqlxmq worker`` stopped at once by a second SIGTERM exits
(143) without handing back the lease of a thread job that never returns."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest

from sqlxmq_py import BlockingCurrentJob, CurrentJob, JobRegistry, exists, job

from ..helpers import job_row, wait_until
from .app import stuck_thread
from .conftest import Runner, Worker, state, status, wait_for_state

pytestmark = pytest.mark.timeout(60)  # a hang (a partial fix) fails within a minute


def db_now(db: psycopg.Connection[Any]) -> datetime:
    row = db.execute("SELECT clock_timestamp()").fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


@job(retain_for=3600)
async def sentinel(current_job: CurrentJob) -> None:
    """Spawned on the second runner: once it completed, that runner has leased."""


# --- (a) a thread job still running at the stop timeout ---


class ThreadRun:
    def __init__(self) -> None:
        self.attempts: list[int] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        self.returned = threading.Event()


_thread_run = ThreadRun()


@job(retain_for=3600)
def blocks(current_job: BlockingCurrentJob) -> None:
    """Runs until the test releases it (at most 60 s, so that no thread outlives the suite)."""
    run = _thread_run
    run.attempts.append(current_job.attempt)
    run.entered.set()
    run.release.wait(60)
    run.returned.set()


async def test_stop_keeps_the_lease_of_a_running_thread_job_until_it_returns(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    """issue 9.26a: stop(timeout=0.5) while a plain ``def`` job blocks: its lease is not handed
    back (it is still renewed past the stop timeout) and a second runner started meanwhile does
    not start it; once the thread returns the job completes, having run exactly once, and stop()
    returns only after that."""
    global _thread_run
    _thread_run = run = ThreadRun()
    job_id = blocks.builder().spawn(conn)
    conn.commit()
    registry = JobRegistry([blocks, sentinel])
    try:
        async with runner(registry, lease=1) as first:
            assert await asyncio.to_thread(run.entered.wait, 15)
            stop_called = db_now(db)
            stopping = asyncio.ensure_future(first.stop(timeout=0.5))

            def renewed_past_the_stop_timeout() -> bool:
                row = job_row(db, job_id)
                assert row is not None
                assert row["state"] == "l", (
                    f"the lease was handed back while the thread still runs: {row['state']!r}"
                )
                # a renewal made after the 0.5 s stop timeout (the lease is 1 s)
                return bool(row["attempt_at"] >= stop_called + timedelta(seconds=1.8))

            await wait_until(renewed_past_the_stop_timeout, timeout=15)
            async with runner(registry, lease=1):
                sentinel_id = sentinel.builder().spawn(conn)
                conn.commit()
                await wait_for_state(db, [sentinel_id], "completed")
                assert run.attempts == [1]  # the second runner did not start it
                assert not stopping.done()  # the thread has not returned
                run.release.set()
                await asyncio.wait_for(stopping, 20)
                assert run.returned.is_set()
                await wait_for_state(db, [job_id], "completed")
    finally:
        run.release.set()
    assert run.attempts == [1]
    found = status(db, job_id)
    assert found is not None
    assert found.attempts == 1


# --- (b) an async job that swallows cancellation during stop ---


class Swallower:
    def __init__(self) -> None:
        self.attempts: list[int] = []
        self.started = asyncio.Event()
        self.finished = asyncio.Event()
        self.again = asyncio.Event()
        self.release = asyncio.Event()
        self.second_start: datetime | None = None


_swallower = Swallower()


@job(retries=2, backoff=0)
async def swallows_stop(current_job: CurrentJob) -> None:
    """The first run swallows every cancellation until the test lets it end; a later run notes
    when (database clock) it started and completes."""
    run = _swallower
    run.attempts.append(current_job.attempt)
    if len(run.attempts) == 1:
        run.started.set()
        while not run.release.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await run.release.wait()
        run.finished.set()
        return
    async with current_job.pool.connection() as c:
        row = await (await c.execute("SELECT clock_timestamp()")).fetchone()
    assert row is not None
    run.second_start = row[0]
    run.again.set()


async def test_stop_with_cancel_grace_returns_and_the_job_waits_for_its_lease_to_expire(
    dsn: str, conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    """issue 9.26b: an async job swallows the cancellation of stop(timeout=0.5); with
    ``set_cancel_grace(0.5)`` stop() returns while the coroutine still runs, and the job is not
    started again before its lease expires (not handed back while the coroutine lives)."""
    global _swallower
    _swallower = run = Swallower()
    job_id = swallows_stop.builder().spawn(conn)
    conn.commit()
    registry = JobRegistry([swallows_stop])
    options = (
        registry.runner(dsn)
        .set_cancel_grace(0.5)
        .set_lease(1)
        .set_poll_interval(0.5)
        .set_maintenance_interval(0.1)
    )
    handle = await options.run()
    try:
        await asyncio.wait_for(run.started.wait(), 15)
        await asyncio.wait_for(handle.stop(timeout=0.5), 20)
        assert not run.finished.is_set()  # the coroutine lives on
        row = job_row(db, job_id)
        assert row is not None
        assert row["state"] != "r", "the lease was handed back while the coroutine still runs"
        lease_end = row["attempt_at"]
        async with runner(registry, lease=1):
            await asyncio.wait_for(run.again.wait(), 20)
        assert run.second_start is not None
        assert run.second_start >= lease_end, "started again before the lease expired"
        assert not run.finished.is_set()
    finally:
        run.release.set()
        await asyncio.wait_for(run.finished.wait(), 10)
        await asyncio.wait_for(handle.stop(timeout=1), 20)


# --- (c) sqlxmq worker: a second SIGTERM while a thread job never returns ---


async def test_a_forced_worker_stop_exits_143_and_the_thread_job_waits_for_its_lease(
    dsn: str, conn: psycopg.Connection[Any], db: psycopg.Connection[Any], adv_worker: Worker
) -> None:
    """issue 9.26c: ``sqlxmq worker``, SIGTERM then SIGTERM while a thread job never returns:
    the process exits promptly with 143, and the job runs again (on another worker) only after
    its lease expired, never while the first process is alive."""
    db.execute(
        "CREATE TABLE starts (job_id uuid, attempt int, pid int, overlap bool, "
        "started_at timestamptz)"
    )
    first = adv_worker("--shutdown-timeout", "60")
    first.wait_for("worker_started")
    job_id = stuck_thread.builder().set_json({"dsn": dsn}).spawn(conn)
    conn.commit()
    await wait_until(lambda: db.execute("SELECT count(*) FROM starts").fetchone() == (1,), 20)
    leased = job_row(db, job_id)
    assert leased is not None
    token = leased["lease_token"]
    lease_end: datetime = leased["attempt_at"]

    def first_lease_end() -> datetime:
        """The first lease's end as last seen (renewals move it on)."""
        nonlocal lease_end
        row = job_row(db, job_id)
        if row is not None and row["lease_token"] == token:
            lease_end = max(lease_end, row["attempt_at"])
        return lease_end

    second = adv_worker()  # a worker that could take the job the moment it is handed back
    second.wait_for("worker_started")
    first.signal(signal.SIGTERM)
    first.wait_for("worker_stopping")
    first.signal(signal.SIGTERM)

    def exited() -> bool:
        first_lease_end()
        return first.proc.poll() is not None

    await wait_until(exited, timeout=15)
    assert await asyncio.to_thread(first.wait) == 143
    first_lease_end()
    await wait_until(lambda: not exists(db, job_id), timeout=20)
    starts = db.execute(
        "SELECT attempt, pid, overlap, started_at FROM starts ORDER BY started_at"
    ).fetchall()
    assert len(starts) == 2, starts
    assert [pid for _, pid, _, _ in starts] == [first.proc.pid, second.proc.pid]
    assert not any(overlap for _, _, overlap, _ in starts), "two copies ran at once"
    assert starts[1][3] >= lease_end, (
        f"started again at {starts[1][3]}, before the first lease ended at {lease_end}"
    )
    assert state(db, job_id) == "gone"
