"""Graceful deploys (issue 13 point 5): a runner told to stop hands its unfinished jobs back as
interrupted. The attempt is not counted, the job is ready at once for another runner, and the
interruption is its own outcome in the status, the log, the counters and the metrics."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
import uuid
from datetime import timedelta
from typing import Any

import psycopg
import structlog
from prometheus_client import CollectorRegistry

from sqlxmq_py import CurrentJob, JobBuilder, JobRegistry, NamedJob, job
from sqlxmq_py.admin import attempt_errors, cancel, job_status
from sqlxmq_py.current_job import BlockingCurrentJob, JobInfo
from sqlxmq_py.hooks import JobOutcome, RunnerHooks
from sqlxmq_py.metrics import PrometheusHooks

from ..helpers import job_row, running, stop_within, wait_until

ME = f"{socket.gethostname()}:{os.getpid()}"
"""How the runners of this test process record themselves on the jobs they interrupt."""


class Outcomes(RunnerHooks):
    """The outcomes the runner tells its hooks."""

    def __init__(self) -> None:
        self.outcomes: list[JobOutcome] = []

    def job_finished(self, job: JobInfo, outcome: JobOutcome, duration_s: float | None) -> None:
        self.outcomes.append(outcome)


def _blocking() -> tuple[NamedJob[..., Any], asyncio.Event]:
    """A job that waits forever (until cancelled), and the event it sets once it runs."""
    inside = asyncio.Event()

    @job(name="blocking", retries=2, retain_for=timedelta(hours=1))
    async def blocking(current_job: CurrentJob) -> None:
        inside.set()
        await asyncio.Event().wait()

    return blocking, inside


async def _interrupt_once(dsn: str, named: NamedJob[..., Any], inside: asyncio.Event) -> None:
    """Runs a runner until the job is inside, then stops it at once (timeout 0)."""
    inside.clear()
    handle = await JobRegistry([named]).runner(dsn).set_poll_interval(0.5).run()
    await asyncio.wait_for(inside.wait(), 30)
    await stop_within(handle, 0)


def _stats_interrupted(db: psycopg.Connection[Any]) -> int:
    row = db.execute("SELECT coalesce(sum(interrupted), 0)::int FROM mq_stats").fetchone()
    assert row is not None
    return int(row[0])


async def test_a_stopped_runner_hands_the_job_back_as_interrupted(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    blocking, inside = _blocking()
    job_id = blocking.builder().spawn(conn)
    conn.commit()
    registry = CollectorRegistry()
    hooks = Outcomes()
    with structlog.testing.capture_logs() as logs:
        handle = await (
            JobRegistry([blocking])
            .runner(db.info.dsn)
            .set_hooks(hooks, PrometheusHooks(registry))
            .run()
        )
        await asyncio.wait_for(inside.wait(), 30)
        await stop_within(handle, 0)

    row = job_row(db, job_id)
    assert row is not None
    assert (row["state"], row["attempts"], row["lease_token"]) == ("r", 0, None)
    ready = db.execute("SELECT attempt_at <= now() FROM mq_jobs WHERE id = %s", (job_id,))
    assert ready.fetchone() == (True,)  # ready at once, not after a backoff
    assert row["last_error"] is None  # nothing failed

    lines = [e for e in logs if e["event"] == "job_interrupted"]
    assert len(lines) == 1
    assert lines[0]["job_id"] == str(job_id)
    assert lines[0]["job_name"] == "blocking"
    assert lines[0]["attempt"] == 1
    assert lines[0]["why"] == "runner stopping"
    assert lines[0]["log_level"] == "info"
    assert not any(e["event"] in ("job_failed", "job_released") for e in logs)

    assert hooks.outcomes == ["interrupted"]
    labels = {"job_name": "blocking", "channel": ""}
    assert registry.get_sample_value("sqlxmq_jobs_interrupted_total", labels) == 1
    assert registry.get_sample_value("sqlxmq_jobs_retried_total", labels) in (None, 0)
    assert _stats_interrupted(db) == 1

    status = job_status(db, job_id)
    assert status is not None
    assert status.interrupted is not None
    assert status.state == "ready"
    assert (status.interrupted.count, status.interrupted.last_by) == (1, ME)
    assert str(status.interrupted).startswith("interrupted 1 time, last at ")
    assert str(status.interrupted).endswith(f" by {ME}")
    (entry,) = attempt_errors(db, job_id)
    assert (entry.attempt, entry.interrupted_by) == (1, ME)


async def test_another_runner_then_completes_it_and_the_history_keeps_the_count(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    blocking, inside = _blocking()
    job_id = blocking.builder().spawn(conn)
    conn.commit()
    await _interrupt_once(db.info.dsn, blocking, inside)

    done = asyncio.Event()

    @job(name="blocking", retries=2, retain_for=timedelta(hours=1))
    async def finishing(current_job: CurrentJob) -> None:
        assert current_job.attempt == 1  # the interrupted attempt was not counted
        done.set()

    async with running(db.info.dsn, [finishing]):
        await asyncio.wait_for(done.wait(), 30)
        await wait_until(lambda: job_row(db, job_id) is None)
    status = job_status(db, job_id)
    assert status is not None
    assert status.interrupted is not None
    assert (status.state, status.attempts) == ("completed", 1)
    assert (status.interrupted.count, status.interrupted.last_by) == (1, ME)


async def test_two_interruptions_count_two(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    blocking, inside = _blocking()
    job_id = blocking.builder().spawn(conn)
    conn.commit()
    await _interrupt_once(db.info.dsn, blocking, inside)
    await _interrupt_once(db.info.dsn, blocking, inside)
    status = job_status(db, job_id)
    assert status is not None
    assert status.interrupted is not None
    assert (status.attempts, status.interrupted.count) == (0, 2)
    assert str(status.interrupted).startswith("interrupted 2 times, ")
    assert [e.attempt for e in attempt_errors(db, job_id)] == [1, 1]
    assert _stats_interrupted(db) == 2


async def test_a_job_asked_to_cancel_is_cancelled_not_interrupted(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    inside = threading.Event()
    stop = threading.Event()

    @job(retain_for=timedelta(hours=1))
    def stubborn(current_job: BlockingCurrentJob) -> None:
        inside.set()
        stop.wait(60)  # released by the test once the cancel request is recorded
        raise RuntimeError("stopped")

    job_id = stubborn.builder().spawn(conn)
    conn.commit()
    with structlog.testing.capture_logs() as logs:
        handle = await JobRegistry([stubborn]).runner(db.info.dsn).run()
        stopping = None
        try:
            await asyncio.to_thread(inside.wait, 30)
            assert cancel(db, [job_id]) == {job_id: "requested"}  # running: only asked
            db.commit()
            stopping = asyncio.create_task(stop_within(handle, 0))
            await wait_until(
                lambda: any(e["event"] == "runner_waiting_for_thread_jobs" for e in logs)
            )
        finally:
            stop.set()
            await (stopping or stop_within(handle, 0))
    status = job_status(db, job_id)
    assert status is not None
    assert status.state == "cancelled"
    assert status.interrupted is None
    assert not any(e["event"] == "job_interrupted" for e in logs)
    assert _stats_interrupted(db) == 0


async def test_a_thread_job_that_sees_stopping_and_raises_is_interrupted(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    inside = threading.Event()
    seen: list[bool] = []

    @job(retries=0)
    def cooperative(current_job: BlockingCurrentJob) -> None:
        inside.set()
        while not current_job.stopping:  # the documented pattern for long thread jobs
            time.sleep(0.01)
        seen.append(True)
        raise RuntimeError("the runner is stopping")

    job_id = cooperative.builder().spawn(conn)
    conn.commit()
    hooks = Outcomes()
    with structlog.testing.capture_logs() as logs:
        handle = await JobRegistry([cooperative]).runner(db.info.dsn).set_hooks(hooks).run()
        await asyncio.to_thread(inside.wait, 30)
        await stop_within(handle, 0)
    assert seen == [True]
    row = job_row(db, job_id)
    assert row is not None
    assert (row["state"], row["attempts"]) == ("r", 0)  # retries=0, yet it runs again
    assert hooks.outcomes == ["interrupted"]
    assert [e["event"] for e in logs].count("job_interrupted") == 1
    status = job_status(db, job_id)
    assert status is not None
    assert status.interrupted is not None
    assert (status.interrupted.count, status.interrupted.last_by) == (1, ME)


async def test_a_thread_job_that_returns_while_stopping_completes(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    inside = threading.Event()

    @job
    def finishes(current_job: BlockingCurrentJob) -> None:
        inside.set()
        while not current_job.stopping:
            time.sleep(0.01)

    job_id: uuid.UUID = finishes.builder().spawn(conn)
    conn.commit()
    hooks = Outcomes()
    handle = await JobRegistry([finishes]).runner(db.info.dsn).set_hooks(hooks).run()
    await asyncio.to_thread(inside.wait, 30)
    await stop_within(handle, 0)
    assert hooks.outcomes == ["completed"]
    assert job_row(db, job_id) is None


def test_older_runners_and_unstarted_hand_backs(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    """A runner of an older version (two arguments) still gets 'released' and its hand-back is
    recorded; a lease handed back before its job started is not an interruption."""
    old, unstarted = (JobBuilder("x").spawn(conn) for _ in range(2))
    conn.commit()
    for job_id, call in (
        (old, "SELECT outcome FROM mq_release(ARRAY[%s]::uuid[], ARRAY[%s]::uuid[])"),
        (
            unstarted,
            "SELECT outcome FROM mq_release(ARRAY[%s]::uuid[], ARRAY[%s]::uuid[], 'h:1', false)",
        ),
    ):
        (leased,) = _lease(db, job_id)
        answer = db.execute(call, (job_id, leased)).fetchall()
        assert answer == ([("released",)] if job_id == old else [("interrupted",)])
    db.commit()
    old_status = job_status(db, old)
    assert old_status is not None
    assert old_status.interrupted is not None
    assert (old_status.interrupted.count, old_status.interrupted.last_by) == (1, "")
    assert "by an unknown runner" in str(old_status.interrupted)
    unstarted_status = job_status(db, unstarted)
    assert unstarted_status is not None
    assert (unstarted_status.attempts, unstarted_status.interrupted) == (0, None)


def _lease(db: psycopg.Connection[Any], job_id: uuid.UUID) -> list[uuid.UUID]:
    """Leases the job as a runner would (one attempt); returns its lease token."""
    row = db.execute(
        "UPDATE mq_jobs SET state = 'l', attempts = attempts + 1, lease_token = gen_random_uuid()"
        " WHERE id = %s RETURNING lease_token",
        (job_id,),
    ).fetchone()
    assert row is not None
    return [row[0]]
