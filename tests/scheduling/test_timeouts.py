"""Timeouts: an async job past its time is cancelled and fails with JobTimeoutError (then is
retried); a thread job keeps its lease until it returns, and then its attempt fails."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from typing import Any

import psycopg
import structlog

from sqlxmq_py import (
    BlockingCurrentJob,
    CurrentJob,
    JobInfo,
    JobRegistry,
    JobTimeoutError,
    job,
)

from ..helpers import Runner, job_row, lease_renewed, wait_until


async def test_an_async_job_past_its_timeout_is_cancelled_and_retried(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    interrupted: list[int] = []
    errors: list[BaseException] = []
    finished = asyncio.Event()

    @job(timeout=0.3, retries=1, backoff=0)
    async def sluggish(current_job: CurrentJob) -> None:
        if current_job.attempt == 1:
            try:
                await asyncio.Event().wait()  # never set
            except asyncio.CancelledError:
                interrupted.append(current_job.attempt)
                raise
        finished.set()

    registry = JobRegistry([sluggish]).set_error_handler(lambda info, exc: errors.append(exc))
    job_id = sluggish.builder().spawn(conn)
    conn.commit()
    async with runner(registry):
        await asyncio.wait_for(finished.wait(), 10)
        await wait_until(lambda: job_row(db, job_id) is None)
    assert interrupted == [1]
    assert len(errors) == 1
    assert isinstance(errors[0], JobTimeoutError)
    assert "its timeout of 0:00:00.300000" in str(errors[0])  # the job's own, not another


async def test_an_async_job_out_of_retries_after_a_timeout_fails(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    @job(timeout=timedelta(milliseconds=200), retries=0)
    async def stuck(current_job: CurrentJob) -> None:
        await asyncio.sleep(30)

    job_id = stuck.builder().spawn(conn)
    conn.commit()
    async with runner([stuck]):
        await wait_until(lambda: (job_row(db, job_id) or {}).get("state") == "f")
    row = job_row(db, job_id)
    assert row is not None
    assert row["last_error"].startswith("JobTimeoutError:")
    assert row["attempts"] == 1


async def test_a_thread_job_keeps_its_lease_until_it_returns_then_fails(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    runs: list[int] = []
    errors: list[BaseException] = []
    lease_held: list[bool] = []

    release = threading.Event()

    @job(timeout=0.2, retries=0, lease=0.6)
    def blocking(current_job: BlockingCurrentJob) -> str:
        runs.append(current_job.attempt)
        release.wait(60)  # until past its timeout, and past its (renewed) lease
        lease_held.append(not current_job.lease_lost)
        return "too late"

    def on_error(info: JobInfo, exc: BaseException) -> None:
        errors.append(exc)

    registry = JobRegistry([blocking]).set_error_handler(on_error)
    job_id = blocking.builder().spawn(conn)
    conn.commit()
    with structlog.testing.capture_logs() as logs:
        async with runner(registry, poll_interval=0.1):
            await wait_until(lambda: (job_row(db, job_id) or {}).get("state") == "l")
            await wait_until(lambda: runs != [])
            await wait_until(lambda: any(e["event"] == "job_timed_out" for e in logs))
            # past the timeout, the job still runs under its lease, renewed past its first term
            await lease_renewed(db, job_id, timedelta(seconds=0.6))
            assert errors == []
            release.set()
            await wait_until(lambda: (job_row(db, job_id) or {}).get("state") == "f", timeout=10)
    assert runs == [1]  # never leased twice
    assert lease_held == [True]
    assert len(errors) == 1
    assert isinstance(errors[0], JobTimeoutError)
    row = job_row(db, job_id)
    assert row is not None
    assert row["last_error"].startswith("JobTimeoutError:")


async def test_a_job_within_its_timeout_completes(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    @job(timeout=5)
    async def quick(current_job: CurrentJob) -> None:
        await asyncio.sleep(0)

    @job(timeout=5)
    def quick_thread(current_job: BlockingCurrentJob) -> None:
        pass

    ids = [quick.builder().spawn(conn), quick_thread.builder().spawn(conn)]
    conn.commit()
    async with runner([quick, quick_thread]):
        await wait_until(lambda: all(job_row(db, i) is None for i in ids))
