"""Failures: retries with backoff, the failed state, error handlers, and bad rows that must be
recorded, never dropped, without stopping the runner."""

from __future__ import annotations

import asyncio
import itertools
from datetime import datetime, timedelta
from typing import Any

import psycopg
import structlog

from sqlxmq_py import CurrentJob, JobInfo, JobRegistry, exists, job

from ..helpers import Runner, count_jobs, db_clock, job_row, wait_until


async def test_retries_then_fails_visibly_with_backoff_between_attempts(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    starts: list[datetime] = []

    @job(retries=2, backoff=0.3)
    async def flaky(current_job: CurrentJob) -> None:
        starts.append(db_clock(db))
        raise RuntimeError(f"boom on attempt {current_job.attempt}")

    job_id = flaky.builder().spawn(conn)
    conn.commit()
    with structlog.testing.capture_logs() as logs:
        async with runner([flaky]):
            await wait_until(lambda: (job_row(db, job_id) or {}).get("state") == "f", timeout=15)
    assert len(starts) == 3
    # each retry starts no earlier than its backoff after the previous start (one clock, the
    # database's; the backoff's jitter only adds): 0.3 s, then doubled
    backoffs = [timedelta(seconds=0.3), timedelta(seconds=0.6)]
    for (earlier, later), backoff in zip(itertools.pairwise(starts), backoffs, strict=True):
        assert later >= earlier + backoff
    row = job_row(db, job_id)
    assert row is not None
    assert row["attempts"] == 3
    assert row["max_attempts"] == 3
    assert row["lease_token"] is None
    assert row["last_error"].startswith("RuntimeError: boom on attempt 3")
    assert "Traceback" in row["last_error"]
    failed = [e for e in logs if e["event"] == "job_failed"]
    assert [e["final"] for e in failed] == [False, False, True]
    assert failed[-1]["log_level"] == "error"


async def test_error_handler_sees_every_failure_and_may_raise(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    handled: list[tuple[str, int, str]] = []

    @job(retries=1, backoff=0)
    async def failing(current_job: CurrentJob) -> None:
        raise ValueError("bad")

    @job
    async def fine(current_job: CurrentJob) -> None:
        pass

    async def handler(info: JobInfo, error: BaseException) -> None:
        handled.append((info.name, info.attempt, str(error)))
        raise RuntimeError("the handler itself fails")

    registry = JobRegistry([failing, fine]).set_error_handler(handler)
    failing_id = failing.builder().spawn(conn)
    conn.commit()
    with structlog.testing.capture_logs() as logs:
        async with runner(registry):
            await wait_until(lambda: (job_row(db, failing_id) or {}).get("state") == "f")
            # the runner survived its handler: it still runs jobs
            fine_id = fine.builder().spawn(conn)
            conn.commit()
            await wait_until(lambda: not exists(db, fine_id))
    assert handled == [(failing.name, 1, "bad"), (failing.name, 2, "bad")]
    assert sum(e["event"] == "error_handler_failed" for e in logs) == 2


async def test_sync_error_handler(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    handled: list[str] = []

    @job(retries=0)
    def failing_thread_job(current_job: Any) -> None:
        raise KeyError("missing")

    registry = JobRegistry([failing_thread_job]).set_error_handler(
        lambda info, error: handled.append(type(error).__name__)
    )
    job_id = failing_thread_job.builder().spawn(conn)
    conn.commit()
    async with runner(registry):
        await wait_until(lambda: (job_row(db, job_id) or {}).get("state") == "f")
    assert handled == ["KeyError"]


async def test_undecodable_payload_is_recorded_as_failed(
    db: psycopg.Connection[Any], runner: Runner
) -> None:
    @job(retries=0)
    async def decodes(current_job: CurrentJob) -> None:
        current_job.json()

    # valid for PostgreSQL's json type, nested deeper than Python's decoder accepts
    deep = "[" * 5_000 + "]" * 5_000
    row = db.execute("SELECT mq_spawn(%s, %s::json, retries => 0)", (decodes.name, deep)).fetchone()
    assert row is not None
    async with runner([decodes]):
        await wait_until(lambda: (job_row(db, row[0]) or {}).get("state") == "f")
    failed = job_row(db, row[0])
    assert failed is not None
    assert failed["last_error"].startswith(f"PayloadError: payload of job {decodes.name!r}")


async def test_job_that_cancels_itself_is_a_failed_attempt(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    @job(retries=0)
    async def cancels(current_job: CurrentJob) -> None:
        raise asyncio.CancelledError

    job_id = cancels.builder().spawn(conn)
    conn.commit()
    async with runner([cancels]):
        await wait_until(lambda: (job_row(db, job_id) or {}).get("state") == "f")
    assert (job_row(db, job_id) or {})["last_error"].startswith("CancelledError")


async def test_failed_jobs_are_kept_and_do_not_run_again(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    runs = 0

    @job(retries=0)
    async def once(current_job: CurrentJob) -> None:
        nonlocal runs
        runs += 1
        raise RuntimeError("no")

    @job
    async def marker(current_job: CurrentJob) -> None:
        pass

    job_id = once.builder().spawn(conn)
    conn.commit()
    async with runner([once, marker]):
        await wait_until(lambda: (job_row(db, job_id) or {}).get("state") == "f")
        # a later job running proves the runner polled again after the failure
        marker_id = marker.builder().spawn(conn)
        conn.commit()
        await wait_until(lambda: not exists(db, marker_id))
    assert runs == 1
    assert count_jobs(db, "state = 'f'") == 1
