"""Live workers: every runner announces itself (host, pid, id, version, channels, concurrency,
start, heartbeat) with the jobs it runs now, and disappears when it stops or goes stale."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from dataclasses import replace
from datetime import timedelta
from typing import Any

import psycopg

import sqlxmq_py
from sqlxmq_py import CurrentJob, JobBuilder, job
from sqlxmq_py.admin import STALE_AFTER, list_workers, set_channel_limit
from sqlxmq_py.pull import fetch
from sqlxmq_py.sql import query

from ..helpers import Runner, wait_until


def _leased_by(db: psycopg.Connection[Any], job_id: uuid.UUID) -> tuple[Any, ...] | None:
    return db.execute(
        "SELECT leased_by, leased_at FROM mq_jobs WHERE id = %s AND state = 'l'", (job_id,)
    ).fetchone()


def _announce(db: psycopg.Connection[Any], age: str) -> uuid.UUID:
    """A runner's announcement whose last heartbeat was ``age`` ago (one that was killed)."""
    runner_id = uuid.uuid4()
    db.execute(
        "INSERT INTO mq_listeners (id, host, pid, heartbeat_at, started_at)"
        " VALUES (%s, 'gone-host', 4242, now() - %s::interval, now() - %s::interval)",
        (runner_id, age, age),
    )
    return runner_id


async def test_a_running_runner_is_listed_with_its_running_jobs_and_leaves_when_it_stops(
    runner: Runner, db: psycopg.Connection[Any], aconn: psycopg.AsyncConnection[Any]
) -> None:
    started = asyncio.Event()
    release = asyncio.Event()

    @job(channel_name="reports")
    async def blocker(current_job: CurrentJob) -> None:
        started.set()
        await release.wait()

    async with runner([blocker], concurrency=(2, 3), channel_names=["reports", "mail"]):
        (idle,) = await list_workers(aconn)
        assert idle.running == 0
        job_id = blocker.builder().spawn(db)
        await started.wait()
        try:
            (worker,) = await list_workers(aconn)
            # the sync read says the same (but for the clock, and an announcement in between)
            (synced,) = list_workers(db)
            moved = replace(
                synced, now=worker.now, heartbeat_at=worker.heartbeat_at, idle=worker.idle
            )
            assert moved == worker
            leased = _leased_by(db, job_id)
            assert leased is not None
            assert leased[0] == worker.id
        finally:
            release.set()
    assert worker.host == socket.gethostname()
    assert worker.pid == os.getpid()
    assert worker.version == sqlxmq_py.__version__
    assert sorted(worker.channel_names or ()) == ["mail", "reports"]
    assert (worker.min_concurrency, worker.max_concurrency) == (2, 3)
    assert worker.running == 1
    assert not worker.stale
    assert worker.started_at <= worker.heartbeat_at <= worker.now
    assert worker.started_at <= leased[1] <= worker.now
    assert worker.uptime == worker.now - worker.started_at
    assert await list_workers(aconn) == []


async def test_a_job_of_a_limited_channel_counts_for_the_runner_that_leased_it(
    runner: Runner, db: psycopg.Connection[Any]
) -> None:
    started = asyncio.Event()
    release = asyncio.Event()

    @job(channel_name="limited")
    async def blocker(current_job: CurrentJob) -> None:
        started.set()
        await release.wait()

    set_channel_limit(db, "limited", 1)
    async with runner([blocker]):
        job_id = blocker.builder().spawn(db)
        await started.wait()
        try:
            (worker,) = list_workers(db)
            leased = _leased_by(db, job_id)
        finally:
            release.set()
    assert worker.running == 1
    assert leased is not None
    assert leased[0] == worker.id


async def test_each_of_two_runners_counts_only_its_own_jobs(
    runner: Runner, db: psycopg.Connection[Any]
) -> None:
    started = {"a": asyncio.Event(), "b": asyncio.Event()}
    release = asyncio.Event()

    @job
    async def blocker(current_job: CurrentJob) -> None:
        started[str(current_job.json())].set()
        await release.wait()

    async with (
        runner([blocker], channel_names=["a"]),
        runner([blocker], channel_names=["b"]),
    ):
        blocker.builder().set_channel_name("a").set_json("a").spawn(db)
        blocker.builder().set_channel_name("a").set_json("a").spawn(db)
        blocker.builder().set_channel_name("b").set_json("b").spawn(db)
        await started["a"].wait()
        await started["b"].wait()
        # both jobs of "a" may not have started yet: wait for the database to say so
        try:
            await wait_until(
                lambda: sorted(w.running for w in list_workers(db)) == [1, 2], timeout=20
            )
            workers = {tuple(w.channel_names or ()): w.running for w in list_workers(db)}
        finally:
            release.set()
    assert workers == {("a",): 2, ("b",): 1}


def test_a_silent_runner_is_stale_and_maintenance_removes_it_later(
    db: psycopg.Connection[Any],
) -> None:
    fresh = _announce(db, "1 second")
    silent = _announce(db, "1 minute")
    dead = _announce(db, "10 minutes")
    listed = {w.id: w for w in list_workers(db)}
    assert {i: w.stale for i, w in listed.items()} == {fresh: False, silent: True, dead: True}
    assert listed[silent].heartbeat_age > STALE_AFTER
    assert listed[silent].host == "gone-host"
    assert listed[silent].version is None  # announced by an older runner: no version
    db.execute(query("maintain")).fetchall()
    assert {w.id for w in list_workers(db)} == {fresh, silent}


def test_the_stale_threshold_is_the_callers(db: psycopg.Connection[Any]) -> None:
    _announce(db, "20 seconds")
    assert [w.stale for w in list_workers(db)] == [False]
    assert [w.stale for w in list_workers(db, stale_after=timedelta(seconds=5))] == [True]


def test_a_job_leased_through_the_pull_api_has_no_runner(db: psycopg.Connection[Any]) -> None:
    job_id = JobBuilder("work").set_channel_name("pulled").spawn(db)
    (leased,) = fetch(db, ["pulled"], limit=1)
    assert leased.id == job_id
    row = _leased_by(db, job_id)
    assert row is not None
    assert row[0] is None
    assert row[1] is not None
