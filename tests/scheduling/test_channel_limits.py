"""Per-channel concurrency limits, enforced across runners in the database."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg

from sqlxmq_py import CurrentJob, JobRegistry, job, spawn_many
from sqlxmq_py.admin import set_channel_limit

from ..helpers import PollSignals, Runner, count_jobs, job_row, wait_until


class _Gauge:
    """How many jobs run at once, and the most ever seen."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0

    def enter(self) -> None:
        self.now += 1
        self.peak = max(self.peak, self.now)

    def leave(self) -> None:
        self.now -= 1


async def test_two_runners_never_exceed_a_channel_limit(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    emails, bulk = _Gauge(), _Gauge()
    wide_open = asyncio.Event()

    @job(channel_name="emails")
    async def send_email(current_job: CurrentJob) -> None:
        emails.enter()
        await asyncio.sleep(0.02)
        emails.leave()

    @job(channel_name="bulk")
    async def bulk_work(current_job: CurrentJob) -> None:
        bulk.enter()
        if bulk.now >= 6:
            wide_open.set()
        await asyncio.wait_for(wide_open.wait(), 10)
        bulk.leave()

    set_channel_limit(db, "emails", 3)
    spawn_many(conn, [send_email.builder() for _ in range(30)])
    spawn_many(conn, [bulk_work.builder() for _ in range(6)])
    conn.commit()
    jobs = [send_email, bulk_work]
    async with runner(jobs, concurrency=(8, 16)), runner(jobs, concurrency=(8, 16)):
        await wait_until(lambda: count_jobs(db) == 0, timeout=30)
    assert emails.peak == 3  # the limit was reached, never passed
    assert bulk.peak == 6  # other channels are not limited


async def test_a_limit_set_while_runners_run_is_picked_up(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    gauge = _Gauge()

    @job(channel_name="reports")
    async def report(current_job: CurrentJob) -> None:
        gauge.enter()
        await asyncio.sleep(0.02)
        gauge.leave()

    registry = JobRegistry([report])
    first, second = PollSignals(), PollSignals()
    async with (
        runner(registry, concurrency=(8, 16), hooks=[first]),
        runner(registry, concurrency=(8, 16), hooks=[second]),
    ):
        await asyncio.to_thread(set_channel_limit, db, "reports", 1)
        # a lease statement under way may predate the limit: each runner starts a poll after it
        # (the runners re-read the limits at every maintenance tick, announcing nothing; until
        # they do, the limited channel is not served at all, and the drain below waits)
        await first.polls_after_now()
        await second.polls_after_now()
        spawn_many(conn, [report.builder() for _ in range(8)])
        conn.commit()
        await wait_until(lambda: count_jobs(db) == 0, timeout=30)
    assert gauge.peak == 1


async def test_a_zero_limit_pauses_a_channel(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    marker_ran = asyncio.Event()
    paused_ran = asyncio.Event()

    @job(channel_name="paused")
    async def paused(current_job: CurrentJob) -> None:
        paused_ran.set()

    @job(channel_name="open")
    async def marker(current_job: CurrentJob) -> None:
        marker_ran.set()

    set_channel_limit(db, "paused", 0)
    paused_id = paused.builder().spawn(conn)
    conn.commit()
    async with runner([paused, marker], poll_interval=0.2):
        marker.builder().spawn(conn)
        conn.commit()
        await asyncio.wait_for(marker_ran.wait(), 10)  # the runner polled since
        assert not paused_ran.is_set()
        assert (job_row(db, paused_id) or {}).get("state") == "r"
        # from a thread: a runner may hold the limit's row lock in a leasing transaction
        await asyncio.to_thread(set_channel_limit, db, "paused", None)
        await asyncio.wait_for(paused_ran.wait(), 10)  # picked up at a later poll


async def test_a_limited_channel_is_not_throttled_to_one_batch_per_poll_interval(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    """The limit caps how many jobs run at once, not how many start per poll: when a limited
    job finishes, the runner leases the next one at once (20 jobs of 10 ms, two at a time,
    take about 0.1 s; one pair per 2 s poll would take 20 s)."""
    gauge = _Gauge()

    @job(channel_name="emails")
    async def send_email(current_job: CurrentJob) -> None:
        gauge.enter()
        await asyncio.sleep(0.01)
        gauge.leave()

    set_channel_limit(db, "emails", 2)
    async with runner([send_email], concurrency=(8, 16), poll_interval=2.0):
        spawn_many(conn, [send_email.builder() for _ in range(20)])
        conn.commit()
        await wait_until(lambda: count_jobs(db) == 0, timeout=5)
    assert gauge.peak == 2
