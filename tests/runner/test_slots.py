"""A slot frees when the job function returns, not when its outcome is written: the next lease
overlaps the completion's round trip. Attacked with completions that cannot be written: the
runner still runs at most ``max`` functions at once and holds at most twice ``max`` leases."""

from __future__ import annotations

from typing import Any

import psycopg

from sqlxmq_py import CurrentJob, job, spawn_many
from sqlxmq_py.admin import set_channel_limit
from sqlxmq_py.sql import query

from ..helpers import PollSignals, Runner, count_jobs, lease_params, listener_idle, wait_until


def _completions_waiting(db: psycopg.Connection[Any], blocker: int) -> bool:
    """Whether another session waits for a lock the ``blocker`` session holds."""
    row = db.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
        (blocker,),
    ).fetchone()
    return row is not None and row[0] > 0


async def test_blocked_completions_never_let_the_runner_hold_more_than_twice_max(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], owner_dsn: str, runner: Runner
) -> None:
    started = 0
    running = 0
    peak = 0

    @job
    async def quick(current_job: CurrentJob) -> None:
        nonlocal started, running, peak
        started += 1
        running += 1
        peak = max(peak, running)
        running -= 1

    spawn_many(conn, [quick.builder() for _ in range(40)])
    conn.commit()
    polls = PollSignals()
    with psycopg.connect(owner_dsn) as blocker:
        # a completion deletes the job's payload row: this lock makes it wait; leasing only
        # reads that table and goes on
        blocker.execute("LOCK TABLE mq_payloads IN SHARE MODE")
        async with runner([quick], concurrency=(2, 4), hooks=[polls]):
            # 4 leased and returned, their completion waits; their slots are free, so 4 more
            # are leased and run; then the 8 held leases take 4 slots, and it leases no more
            await wait_until(lambda: started == 8, timeout=10)
            await wait_until(lambda: _completions_waiting(db, blocker.info.backend_pid))
            assert count_jobs(db, "state = 'l'") == 8
            assert started == 8
            assert sum(leased for leased, _ in polls.polls) == 8
            blocker.rollback()  # the completions are written; the rest drains
            await wait_until(lambda: count_jobs(db) == 0, timeout=20)
    assert started == 40
    assert peak <= 4


async def test_a_limited_channel_leases_once_per_finished_job_not_once_more_at_its_return(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    """A returned job's slot is free in the runner, but its limited channel's count in the
    database holds it until the completion is written: a lease at the function's return finds
    the channel full. The completion's news comes twice (the attempt settles; the database
    wakes the channel's idle runners, this one too), often after the next lease has taken the
    slot: a runner that holds as many of the channel's jobs as its limit allows ignores it.
    Either way it would pay an empty round trip for about every other job."""
    done = 0

    @job(channel_name="one-at-a-time")
    async def limited(current_job: CurrentJob) -> None:
        nonlocal done
        done += 1

    set_channel_limit(conn, "one-at-a-time", 1)
    spawn_many(conn, [limited.builder() for _ in range(30)])
    conn.commit()
    polls = PollSignals()
    # no poll for want of news while it drains: every lease is one that news asked for
    async with runner([limited], concurrency=(2, 4), hooks=[polls], poll_interval=600):
        await wait_until(lambda: count_jobs(db) == 0, timeout=20)
    assert done == 30
    empty = sum(1 for leased, _ in polls.polls if leased == 0)
    # the empty leases that remain: the one after announcing the runner idle, the one the
    # listener's subscription asks for if it comes while the second lease runs, and two at
    # the end (the last job's two notices find the runner holding nothing: room, to it)
    assert empty <= 4, polls.polls
    assert len(polls.polls) <= 30 + 4, polls.polls


async def test_a_completion_in_a_limited_channel_wakes_an_idle_runner_with_room(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    """The 'freed' notice must still wake a runner that holds none of the channel's jobs: here
    the channel's one slot is held by another worker (this test's connection), the runner
    found it full and waits with no poll due for ten minutes; the other worker completes."""
    ran: list[str] = []

    @job(channel_name="one-at-a-time")
    async def limited(current_job: CurrentJob) -> None:
        ran.append(str(current_job.id))

    set_channel_limit(conn, "one-at-a-time", 1)
    first = limited.builder().spawn(conn)
    conn.commit()
    (held,) = conn.execute(
        query("lease_limited"),
        {**lease_params(limit=1), "channel_name": "one-at-a-time"},
    ).fetchall()
    conn.commit()
    assert held[0] == first
    second = limited.builder().spawn(conn)
    conn.commit()
    polls = PollSignals()
    async with runner([limited], hooks=[polls], poll_interval=600):
        await wait_until(lambda: listener_idle(db))
        assert ran == []
        conn.execute(
            query("complete"),
            {
                "ids": [held[0]],
                "tokens": [held[1]],
                "results": [None],
                "default_retain": "0 s",
                "wait": True,
            },
        )
        conn.commit()
        await wait_until(lambda: ran == [str(second)], timeout=20)
