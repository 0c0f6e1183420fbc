"""Bulk actions (sqlxmq_py.admin: JobFilter, count_matching, retry_matching, cancel_matching,
delete_matching, chains_released, run_now): counts, batches, literal error text, a runner
leasing while jobs are cancelled, ordered chains a delete would release."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from sqlxmq_py import CurrentJob, job, spawn_many
from sqlxmq_py.admin import (
    ChainsWouldBeReleasedError,
    EmptyFilterError,
    JobFilter,
    cancel_matching,
    chains_released,
    count_matching,
    delete_matching,
    purge,
    retry_matching,
    run_now,
)
from sqlxmq_py.errors import ConfigurationError

from ..helpers import Runner, count_jobs, wait_until
from ._util import history_count, state_of


@job(retries=0)
async def task(current_job: CurrentJob) -> None:
    pass


@job(ordered=True, retries=0)
async def step(current_job: CurrentJob) -> None:
    pass


def _fail(db: psycopg.Connection[Any], ids: list[uuid.UUID], error: str) -> None:
    """Marks queued jobs failed with this error (the state a last failed attempt leaves)."""
    db.execute("UPDATE mq_payloads SET last_error = %s WHERE id = ANY(%s)", (error, ids))
    db.execute("UPDATE mq_jobs SET state = 'f', attempts = max_attempts WHERE id = ANY(%s)", (ids,))


def _spawn(conn: psycopg.Connection[Any], n: int, channel: str = "") -> list[uuid.UUID]:
    ids = spawn_many(conn, [task.builder().set_channel_name(channel) for _ in range(n)])
    conn.commit()
    return ids


def test_empty_filter_is_refused() -> None:
    with pytest.raises(EmptyFilterError):
        JobFilter()
    assert JobFilter(all=True).empty
    with pytest.raises(ConfigurationError):
        JobFilter(states=["nonsense"])  # type: ignore[list-item]
    with pytest.raises(ConfigurationError):
        JobFilter(older_than=3600)  # type: ignore[arg-type]


def test_counts_match(conn: psycopg.Connection[Any], db: psycopg.Connection[Any]) -> None:
    failed = _spawn(conn, 5, "a")
    _fail(db, failed[:3], "boom")
    _spawn(conn, 4, "b")
    assert count_matching(db, JobFilter(channel_name="a")) == 5
    assert count_matching(db, JobFilter(states=["failed"])) == 3
    assert count_matching(db, JobFilter(channel_name="a"), action="retry") == 3
    assert count_matching(db, JobFilter(channel_name="a"), action="cancel") == 2
    assert count_matching(db, JobFilter(all=True)) == 9
    assert count_matching(db, JobFilter(all=True), action="run_now") == 0
    assert count_matching(db, JobFilter(error="BOO")) == 3
    assert count_matching(db, JobFilter(older_than=timedelta(hours=1))) == 0
    assert count_matching(db, JobFilter(newer_than=timedelta(hours=1))) == 9


def test_retry_matching_in_batches(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], pool: ConnectionPool[Any]
) -> None:
    matching = _spawn(conn, 2500, "mail")
    other_channel = _spawn(conn, 10, "sms")
    _fail(db, matching + other_channel, "smtp down")
    other_error = _spawn(conn, 10, "mail")
    _fail(db, other_error, "bad address")
    seen: list[int] = []
    retried = retry_matching(
        pool, JobFilter(channel_name="mail", error="smtp"), batch_size=1000, progress=seen.append
    )
    assert retried == 2500
    assert seen == [1000, 2000, 2500]
    assert count_jobs(db, "state = 'f'") == 20
    assert count_jobs(db, "state = 'r' AND attempts = 0") == 2500
    assert all(state_of(db, i) == "f" for i in other_channel + other_error)


def test_error_filter_matches_percent_and_underscore_literally(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    literal, lookalike = _spawn(conn, 1), _spawn(conn, 1)
    _fail(db, literal, "disk 100% full in /var/tmp_x")
    _fail(db, lookalike, "disk 1000 full in /var/tmpXx")
    assert count_matching(db, JobFilter(error="100% full")) == 1
    assert count_matching(db, JobFilter(error="tmp_x")) == 1
    assert count_matching(db, JobFilter(error="%")) == 1
    assert retry_matching(db, JobFilter(error="tmp_x")) == 1
    assert state_of(db, literal[0]) == "r"
    assert state_of(db, lookalike[0]) == "f"


async def test_async_pool_and_transaction(
    conn: psycopg.Connection[Any], apool: AsyncConnectionPool[Any], db: psycopg.Connection[Any]
) -> None:
    ids = _spawn(conn, 30, "x")
    assert await count_matching(apool, JobFilter(channel_name="x"), action="cancel") == 30
    assert await cancel_matching(apool, JobFilter(channel_name="x"), batch_size=7) == 30
    assert history_count(db, "state = 'cancelled'") == 30
    # on a connection in a transaction, every batch joins it: nothing shows until the commit
    more = _spawn(conn, 5, "y")
    assert cancel_matching(conn, JobFilter(channel_name="y"), batch_size=2) == 5
    assert all(state_of(db, i) == "r" for i in more)
    conn.rollback()
    assert all(state_of(db, i) == "r" for i in more)
    assert len(ids) == 30


async def test_cancel_while_a_runner_leases(
    conn: psycopg.Connection[Any],
    db: psycopg.Connection[Any],
    pool: ConnectionPool[Any],
    runner: Runner,
) -> None:
    ran: set[uuid.UUID] = set()
    first = asyncio.Event()

    @job(name="race", channel_name="race", retries=0)
    async def race(current_job: CurrentJob) -> None:
        ran.add(current_job.id)
        first.set()

    ids = spawn_many(conn, [race.builder().set_retain_for(3600) for _ in range(300)])
    conn.commit()
    async with runner([race], concurrency=(4, 8)):
        await first.wait()
        cancelled = await asyncio.to_thread(
            cancel_matching, pool, JobFilter(channel_name="race"), batch_size=10
        )
        await wait_until(lambda: count_jobs(db, "channel_name = 'race'") == 0, timeout=60)
    rows = db.execute("SELECT id, state FROM mq_history WHERE id = ANY(%s)", (ids,)).fetchall()
    states = dict(rows)
    assert set(states) == set(ids)
    cancelled_ids = {i for i, s in states.items() if s == "cancelled"}
    assert len(cancelled_ids) == cancelled
    assert not cancelled_ids & ran
    assert {i for i, s in states.items() if s == "completed"} == ran


def test_delete_refuses_to_release_a_chain_without_confirmation(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    chain = spawn_many(conn, [step.builder().set_channel_name("ord").set_json(i) for i in range(3)])
    loose = _spawn(conn, 2, "loose")
    conn.commit()
    _fail(db, [chain[0]], "head broke")
    _fail(db, loose, "head broke")
    assert [state_of(db, i) for i in chain[1:]] == ["b", "b"]
    (preview,) = chains_released(db, JobFilter(error="head broke"))
    assert (preview.channel_name, preview.head_id, preview.waiting) == ("ord", chain[0], 2)
    with pytest.raises(ChainsWouldBeReleasedError) as refused:
        delete_matching(db, JobFilter(error="head broke"))
    assert refused.value.chains == (preview,)
    assert count_jobs(db, "state = 'f'") == 3  # nothing deleted
    assert delete_matching(db, JobFilter(channel_name="loose")) == 2
    assert delete_matching(db, JobFilter(error="head broke"), release_chains=True) == 1
    assert state_of(db, chain[0]) is None
    assert state_of(db, chain[1]) == "r"
    assert chains_released(db, JobFilter(all=True)) == []


def test_delete_removes_history_too(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    ids = _spawn(conn, 4, "h")
    cancel_matching(db, JobFilter(channel_name="h"), reason="not needed")
    assert history_count(db) == 4
    assert count_matching(db, JobFilter(channel_name="h"), action="delete") == 4
    assert delete_matching(db, JobFilter(channel_name="h", error="needed"), batch_size=3) == 4
    assert history_count(db) == 0
    assert len(ids) == 4


async def test_run_now_makes_a_delayed_job_ready(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    done = asyncio.Event()

    @job(name="later", channel_name="later")
    async def later(current_job: CurrentJob) -> None:
        done.set()

    by_id = later.builder().set_delay(timedelta(hours=1)).spawn(conn)
    by_filter = later.builder().set_delay(timedelta(hours=1)).set_channel_name("l2").spawn(conn)
    conn.commit()
    assert run_now(db, [by_id]) == 1
    assert state_of(db, by_id) == "r"
    assert run_now(db, JobFilter(channel_name="l2")) == 1
    assert state_of(db, by_filter) == "r"
    assert run_now(db, [by_id]) == 0  # ready already
    async with runner([later]):
        await asyncio.wait_for(done.wait(), 30)


async def test_purge_keeps_a_failed_chain_head_unless_told(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], aconn: psycopg.AsyncConnection[Any]
) -> None:
    chain = spawn_many(conn, [step.builder().set_channel_name("p").set_json(i) for i in range(2)])
    loose = _spawn(conn, 1, "p-loose")
    conn.commit()
    _fail(db, [chain[0], *loose], "old")
    result = purge(db, failed_before=timedelta(0))
    assert (result.failed, result.history) == (1, 0)
    (kept,) = result.chains_kept
    assert (kept.head_id, kept.waiting) == (chain[0], 1)
    assert state_of(db, chain[0]) == "f"
    assert state_of(db, chain[1]) == "b"
    released = await purge(aconn, failed_before=timedelta(0), release_chains=True)
    await aconn.commit()
    assert (released.failed, released.chains_kept) == (1, ())
    assert state_of(db, chain[1]) == "r"


def test_states_an_action_does_not_apply_to_match_nothing(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    ids = _spawn(conn, 2, "n")
    assert count_matching(db, JobFilter(states=["ready"])) == 2
    assert count_matching(db, JobFilter(states=["ready"]), action="retry") == 0
    assert retry_matching(db, JobFilter(states=["ready"])) == 0
    assert cancel_matching(db, JobFilter(states=["running", "failed"])) == 0
    assert all(state_of(db, i) == "r" for i in ids)
