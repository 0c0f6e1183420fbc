"""Priorities (higher first within a channel group, groups served round-robin) and absolute
run times."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest

from sqlxmq_py import ConfigurationError, CurrentJob, job, spawn_many
from sqlxmq_py.admin import job_status

from ..helpers import Runner, count_jobs, job_row
from ._util import db_now


@job
async def noop(current_job: CurrentJob) -> None:
    pass


async def test_higher_priority_runs_first_within_a_group(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    order: list[int] = []
    done = asyncio.Event()

    @job
    async def ranked(current_job: CurrentJob) -> None:
        order.append(current_job.json())
        if len(order) == 6:
            done.set()

    priorities = [0, 5, -3, 10, 5, 2]
    spawn_many(conn, [ranked.builder().set_priority(p).set_json(p) for p in priorities])
    conn.commit()
    async with runner([ranked], concurrency=(1, 1)):
        await asyncio.wait_for(done.wait(), 10)
    assert order == sorted(priorities, reverse=True)


async def test_equal_priorities_run_oldest_first_and_the_decorator_sets_a_default(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    order: list[str] = []
    done = asyncio.Event()

    @job(priority=3)
    async def urgent(current_job: CurrentJob) -> None:
        order.append(current_job.json())
        if len(order) == 4:
            done.set()

    @job
    async def routine(current_job: CurrentJob) -> None:
        order.append(current_job.json())
        if len(order) == 4:
            done.set()

    spawn_many(
        conn,
        [
            routine.builder().set_json("routine-1"),
            urgent.builder().set_json("urgent-1"),
            routine.builder().set_json("routine-2"),
            urgent.builder().set_json("urgent-2"),
        ],
    )
    conn.commit()
    async with runner([urgent, routine], concurrency=(1, 1)):
        await asyncio.wait_for(done.wait(), 10)
    assert order == ["urgent-1", "urgent-2", "routine-1", "routine-2"]


async def test_groups_are_served_round_robin_whatever_their_priorities(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    order: list[tuple[str, int]] = []
    done = asyncio.Event()

    @job
    async def grouped(current_job: CurrentJob) -> None:
        order.append((current_job.channel_args, current_job.json()))
        if len(order) == 6:
            done.set()

    spawn_many(
        conn,
        [grouped.builder().set_channel_args("a").set_priority(100).set_json(i) for i in range(3)]
        + [grouped.builder().set_channel_args("b").set_json(i) for i in range(3)],
    )
    conn.commit()
    async with runner([grouped], concurrency=(1, 1)):
        await asyncio.wait_for(done.wait(), 10)
    groups = [g for g, _ in order]
    # a high priority in one group does not starve the other: they alternate
    assert all(x != y for x, y in itertools.pairwise(groups)), groups
    assert sorted(order) == [(g, i) for g in "ab" for i in range(3)]


async def test_set_run_at_runs_the_job_no_earlier(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    started: list[datetime] = []
    ran = asyncio.Event()

    @job
    async def timed(current_job: CurrentJob) -> None:
        started.append(db_now(db))
        ran.set()

    run_at = db_now(db) + timedelta(milliseconds=700)
    job_id = timed.builder().set_run_at(run_at).spawn(conn)
    conn.commit()
    status = job_status(db, job_id)
    assert status is not None
    assert (status.state, status.run_at) == ("scheduled", run_at)
    # the poll timer never fires within the test: the runner must wake for the run time
    async with runner([timed], poll_interval=3600):
        await asyncio.wait_for(ran.wait(), 30)
    assert run_at <= started[0]


def test_set_run_at_keeps_the_instant_whatever_the_time_zone(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    tokyo = timezone(timedelta(hours=9))
    run_at = datetime(2031, 5, 4, 9, 30, tzinfo=tokyo)
    job_id = noop.builder().set_run_at(run_at).spawn(conn)
    conn.commit()
    row = job_row(db, job_id)
    assert row is not None
    assert row["attempt_at"] == datetime(2031, 5, 4, 0, 30, tzinfo=UTC)
    assert row["state"] == "s"


def test_a_run_at_in_the_past_is_ready_at_once(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    job_id = noop.builder().set_run_at(datetime(2001, 1, 1, tzinfo=UTC)).spawn(conn)
    conn.commit()
    assert (job_row(db, job_id) or {})["state"] == "r"


def test_set_run_at_and_set_delay_replace_each_other(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    far = datetime(2040, 1, 1, tzinfo=UTC)
    delayed = noop.builder().set_run_at(far).set_delay(0).spawn(conn)
    at_time = noop.builder().set_delay(timedelta(days=1)).set_run_at(far).spawn(conn)
    conn.commit()
    assert (job_row(db, delayed) or {})["state"] == "r"
    row = job_row(db, at_time)
    assert row is not None
    assert row["attempt_at"] == far
    assert count_jobs(db) == 2


def test_run_at_the_schema_cannot_store_is_refused_naming_the_bound(
    db: psycopg.Connection[Any],
) -> None:
    last = datetime(8999, 12, 31, 23, 59, tzinfo=UTC)
    assert count_jobs(db) == 0
    noop.builder().set_run_at(last).spawn(db)  # the latest accepted time is stored
    db.commit()
    assert count_jobs(db, "state = 's'") == 1
    with pytest.raises(ConfigurationError, match="run_at must be before 9000-01-01"):
        noop.builder().set_run_at(datetime(9000, 1, 1, tzinfo=UTC))
    with pytest.raises(ConfigurationError, match="run_at"):
        noop.builder().set_run_at(datetime(9999, 12, 31, tzinfo=timezone(timedelta(hours=-5))))
