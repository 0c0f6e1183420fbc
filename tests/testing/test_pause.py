"""drain() and run_pending() honour what operators set on channels, as a runner does: a job of
a paused channel waits until the channel is resumed; a channel with a limit runs a job only
while fewer than its limit are running (jobs running under real runners count)."""

from __future__ import annotations

from typing import Any

import psycopg

from sqlxmq_py import CurrentJob, JobRegistry, job
from sqlxmq_py.admin import pause_channel, resume_channel, set_channel_limit
from sqlxmq_py.pull import complete, fetch
from sqlxmq_py.testing import drain, run_pending, spawned


@job(channel_name="kit_paused")
async def held(current_job: CurrentJob) -> str:
    return "held ran"


@job(channel_name="kit_open")
async def free(current_job: CurrentJob) -> str:
    return "free ran"


@job(channel_name="kit_paused")
async def pauses_its_channel(current_job: CurrentJob) -> None:
    async with current_job.pool.connection() as conn:
        await pause_channel(conn, "kit_paused")


REGISTRY = JobRegistry([held, free, pauses_its_channel])


async def test_a_paused_channel_runs_nothing_until_resumed(
    sqlxmq_aconn: psycopg.AsyncConnection[Any],
) -> None:
    held_id = await held.builder().spawn(sqlxmq_aconn)
    free_id = await free.builder().spawn(sqlxmq_aconn)
    await pause_channel(sqlxmq_aconn, "kit_paused")

    ran = await drain(sqlxmq_aconn, REGISTRY)
    assert [(r.id, r.outcome) for r in ran] == [(free_id, "completed")]
    (waiting,) = await spawned(sqlxmq_aconn, held)
    assert (waiting.id, waiting.state) == (held_id, "ready")
    # asking for the channel by name does not get round the pause either
    assert await drain(sqlxmq_aconn, REGISTRY, channel_names=["kit_paused"]) == []

    await resume_channel(sqlxmq_aconn, "kit_paused")
    ran = await drain(sqlxmq_aconn, REGISTRY)
    assert [(r.id, r.outcome, r.result) for r in ran] == [(held_id, "completed", "held ran")]


async def test_a_pause_a_job_sets_holds_for_the_rest_of_the_drain(
    sqlxmq_aconn: psycopg.AsyncConnection[Any],
) -> None:
    first = await pauses_its_channel.builder().spawn(sqlxmq_aconn)
    later = await held.builder().spawn(sqlxmq_aconn)
    ran = await drain(sqlxmq_aconn, REGISTRY)
    assert [r.id for r in ran] == [first]
    assert [j.id for j in await spawned(sqlxmq_aconn, held)] == [later]


def test_run_pending_honours_pauses_and_limits(sqlxmq_conn: psycopg.Connection[Any]) -> None:
    one, two = (held.builder().spawn(sqlxmq_conn) for _ in range(2))
    pause_channel(sqlxmq_conn, "kit_paused")
    assert run_pending(sqlxmq_conn, REGISTRY) == []
    resume_channel(sqlxmq_conn, "kit_paused")
    set_channel_limit(sqlxmq_conn, "kit_paused", 1)
    # a job of the channel is running elsewhere (leased through the pull API): the limit is full
    (elsewhere,) = fetch(sqlxmq_conn, ["kit_paused"], limit=1)
    assert run_pending(sqlxmq_conn, REGISTRY) == []
    complete(sqlxmq_conn, elsewhere)
    ran = run_pending(sqlxmq_conn, REGISTRY)
    assert [r.id for r in ran] == [two if elsewhere.id == one else one]
    assert [r.outcome for r in ran] == ["completed"]
    set_channel_limit(sqlxmq_conn, "kit_paused", 0)  # a limit of 0 holds like a pause
    third = held.builder().spawn(sqlxmq_conn)
    assert run_pending(sqlxmq_conn, REGISTRY) == []
    set_channel_limit(sqlxmq_conn, "kit_paused", None)
    assert [r.id for r in run_pending(sqlxmq_conn, REGISTRY)] == [third]
