"""Pausing and resuming channels: runners and fetch lease nothing from a paused channel, its
running jobs finish, and resuming runs what waited. The runners here poll every 30 s and never
run maintenance during a test, so the only way they can learn of a pause in time is the
notification that pausing sends (once their listeners have subscribed and their first polls
are done: a poll that starts as a channel is paused, before the runner has read the
notification, may still lease from it; the promise is "within a maintenance interval")."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest

from sqlxmq_py import ConfigurationError, CurrentJob, job
from sqlxmq_py.admin import (
    ChannelInfo,
    channel_info,
    channel_limits,
    list_channels,
    pause_channel,
    resume_channel,
    set_channel_limit,
)
from sqlxmq_py.pull import complete, fetch

from ..helpers import (
    PollSignals,
    Runner,
    count_jobs,
    job_row,
    maintenance_passed,
    wait_until,
)

DEAF_TO_TIMERS: dict[str, Any] = {"poll_interval": 30.0, "maintenance_interval": 3600.0}


async def _settled(db: psycopg.Connection[Any], signals: list[PollSignals]) -> None:
    """Waits until each runner (one per ``signals``) has subscribed its listener (its last
    LISTEN, on its own ping channel, is done), so that it hears what is notified from now on,
    and has announced itself idle and polled once more after that: from now on it polls only
    when notified (or in 30 s)."""

    def settled() -> bool:
        row = db.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND state = 'idle' AND query LIKE 'LISTEN \"mq\\_ping\\_%'"
        ).fetchone()
        idle = db.execute("SELECT count(*) FILTER (WHERE idle) FROM mq_listeners").fetchone()
        return (
            row == (len(signals),)
            and idle == (len(signals),)
            and all(len(s.polls) >= 2 for s in signals)
        )

    await wait_until(settled)


async def test_a_paused_channel_starts_nothing_its_running_job_finishes_and_resume_runs_it(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    started, release, waited_ran, marker_ran = (asyncio.Event() for _ in range(4))

    @job(channel_name="reports")
    async def long_report(current_job: CurrentJob) -> None:
        started.set()
        await asyncio.wait_for(release.wait(), 10)

    @job(channel_name="reports")
    async def report(current_job: CurrentJob) -> None:
        waited_ran.set()

    @job(channel_name="emails")
    async def marker(current_job: CurrentJob) -> None:
        marker_ran.set()

    signals = PollSignals()
    async with runner([long_report, report, marker], hooks=[signals], **DEAF_TO_TIMERS):
        await _settled(db, [signals])
        running_id = long_report.builder().spawn(conn)
        conn.commit()
        await asyncio.wait_for(started.wait(), 10)
        pause_channel(db, "reports")
        waiting_id = report.builder().spawn(conn)
        conn.commit()
        marker.builder().spawn(conn)  # spawned after the paused channel's job
        conn.commit()
        await asyncio.wait_for(marker_ran.wait(), 10)
        assert not waited_ran.is_set()
        assert (job_row(db, waiting_id) or {}).get("state") == "r"
        now = channel_info(db, "reports")
        assert (now.paused, now.ready, now.running) == (True, 1, 1)
        # the job that ran when the channel was paused finishes normally
        release.set()
        await wait_until(lambda: job_row(db, running_id) is None)
        assert (job_row(db, waiting_id) or {}).get("state") == "r"
        reports = ChannelInfo(
            channel_name="reports", paused=True, max_running=None, ready=1, running=0
        )
        assert list_channels(db) == [reports]
        assert channel_info(db, "reports") == reports
        resume_channel(db, "reports")
        await asyncio.wait_for(waited_ran.wait(), 10)


async def test_two_runners_both_stop_leasing_a_paused_channel(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    markers = [asyncio.Event() for _ in range(4)]
    paused_ran = asyncio.Event()

    @job(channel_name="paused")
    async def held(current_job: CurrentJob) -> None:
        paused_ran.set()

    @job(channel_name="open")
    async def marker(current_job: CurrentJob) -> None:
        markers[current_job.json()].set()

    jobs = [held, marker]
    first, second = PollSignals(), PollSignals()
    async with (
        runner(jobs, hooks=[first], **DEAF_TO_TIMERS),
        runner(jobs, hooks=[second], **DEAF_TO_TIMERS),
    ):
        await _settled(db, [first, second])
        pause_channel(db, "paused")
        for _ in range(3):
            held.builder().spawn(conn)
        conn.commit()
        for i in range(len(markers)):
            marker.builder().set_json(i).spawn(conn)
        conn.commit()
        await asyncio.wait_for(asyncio.gather(*(m.wait() for m in markers)), 10)
        assert not paused_ran.is_set()
        assert count_jobs(db, "channel_name = 'paused' AND state = 'r'") == 3
        resume_channel(db, "paused")
        await wait_until(lambda: count_jobs(db, "channel_name = 'paused'") == 0)


async def test_a_runner_of_named_channels_hears_the_pause_of_its_channel(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    marker_ran, paused_ran = asyncio.Event(), asyncio.Event()

    @job(channel_name="mine")
    async def held(current_job: CurrentJob) -> None:
        paused_ran.set()

    @job(channel_name="also-mine")
    async def marker(current_job: CurrentJob) -> None:
        marker_ran.set()

    options = {**DEAF_TO_TIMERS, "channel_names": ["mine", "also-mine"]}
    signals = PollSignals()
    async with runner([held, marker], hooks=[signals], **options):
        await _settled(db, [signals])
        pause_channel(db, "mine")
        held_id = held.builder().spawn(conn)
        conn.commit()
        marker.builder().spawn(conn)
        conn.commit()
        await asyncio.wait_for(marker_ran.wait(), 10)
        assert (job_row(db, held_id) or {}).get("state") == "r"
        resume_channel(db, "mine")
        await asyncio.wait_for(paused_ran.wait(), 10)


async def test_a_limit_edit_reaches_running_runners(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    marker_ran, limited_ran = asyncio.Event(), asyncio.Event()

    @job(channel_name="limited")
    async def limited(current_job: CurrentJob) -> None:
        limited_ran.set()

    @job(channel_name="open")
    async def marker(current_job: CurrentJob) -> None:
        marker_ran.set()

    signals = PollSignals()
    async with runner([limited, marker], hooks=[signals], **DEAF_TO_TIMERS):
        await _settled(db, [signals])
        set_channel_limit(db, "limited", 0)
        limited_id = limited.builder().spawn(conn)
        conn.commit()
        marker.builder().spawn(conn)
        conn.commit()
        await asyncio.wait_for(marker_ran.wait(), 10)
        assert (job_row(db, limited_id) or {}).get("state") == "r"
        set_channel_limit(db, "limited", 1)
        await asyncio.wait_for(limited_ran.wait(), 10)


def test_fetch_takes_nothing_from_a_paused_channel(conn: psycopg.Connection[Any]) -> None:
    @job(channel_name="paused")
    def held(current_job: CurrentJob) -> None: ...

    @job(channel_name="open")
    def other(current_job: CurrentJob) -> None: ...

    held_id = held.builder().spawn(conn)
    other_id = other.builder().spawn(conn)
    pause_channel(conn, "paused")
    conn.commit()
    assert fetch(conn, ["paused"], limit=5) == []
    (taken,) = fetch(conn, None, limit=5)
    assert taken.id == other_id
    complete(conn, taken)
    resume_channel(conn, "paused")
    (taken,) = fetch(conn, None, limit=5)
    assert taken.id == held_id
    conn.commit()


async def test_pause_resume_and_limits_are_kept_apart(
    db: psycopg.Connection[Any], aconn: psycopg.AsyncConnection[Any]
) -> None:
    pause_channel(db, "a")
    set_channel_limit(db, "a", 2)
    set_channel_limit(db, "b", 3)
    set_channel_limit(db, "a", None)  # removing the limit keeps the pause
    assert [(c.channel_name, c.paused, c.max_running) for c in list_channels(db)] == [
        ("a", True, None),
        ("b", False, 3),
    ]
    assert channel_limits(db) == {"b": 3}
    await pause_channel(aconn, "b")
    await resume_channel(aconn, "a")  # paused without a limit: nothing is left to say
    await resume_channel(aconn, "never-paused")
    await aconn.commit()
    assert [(c.channel_name, c.paused, c.max_running) for c in await list_channels(aconn)] == [
        ("b", True, 3)
    ]
    assert await channel_info(aconn, "b") == ChannelInfo(
        channel_name="b", paused=True, max_running=3, ready=0, running=0
    )
    assert channel_info(db, "nothing") == ChannelInfo(
        channel_name="nothing", paused=False, max_running=None, ready=0, running=0
    )
    resume_channel(db, "b")  # resuming keeps the limit
    assert channel_limits(db) == {"b": 3}
    assert db.execute("SELECT count(*) FROM mq_channel_limits").fetchone() == (1,)
    with pytest.raises(ConfigurationError, match="channel_name"):
        pause_channel(db, 5)  # type: ignore[call-overload]
    with pytest.raises(ConfigurationError, match="max_running"):
        set_channel_limit(db, "a", -1)


async def test_a_runner_that_missed_the_notification_learns_at_its_maintenance(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    """A pause written without its notification (as if it was lost: a deaf listener behind a
    transaction pooler) holds from the runner's next maintenance on."""
    marker_ran, paused_ran = asyncio.Event(), asyncio.Event()

    @job(channel_name="quiet")
    async def held(current_job: CurrentJob) -> None:
        paused_ran.set()

    @job(channel_name="open")
    async def marker(current_job: CurrentJob) -> None:
        marker_ran.set()

    async with runner([held, marker], poll_interval=30.0, maintenance_interval=0.05):
        db.execute("INSERT INTO mq_channel_limits (channel_name, paused) VALUES ('quiet', true)")
        # two passes: the second one's re-read of the limits began after the first returned
        await maintenance_passed(db)
        await maintenance_passed(db)
        held_id = held.builder().spawn(conn)
        conn.commit()
        marker.builder().spawn(conn)
        conn.commit()
        await asyncio.wait_for(marker_ran.wait(), 10)
        assert (job_row(db, held_id) or {}).get("state") == "r"
        db.execute("DELETE FROM mq_channel_limits")  # resumed, without a notification either
        await asyncio.wait_for(paused_ran.wait(), 10)  # maintenance saw it: polled at once
