"""Recurring jobs: due ticks (pure), exactly one job per tick with several runners, tick keys,
backfill of missed ticks, and the options of the scheduled job."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import psycopg
import structlog

from sqlxmq_py import CurrentJob, JobRegistry, job

from ..helpers import Runner, count_jobs, wait_until
from ._util import db_now


def _tick_of(key: str, schedule: str) -> datetime:
    prefix = f"cron:{schedule}:"
    assert key.startswith(prefix), key
    return datetime.fromisoformat(key[len(prefix) :])


async def test_three_runners_spawn_exactly_one_job_per_tick(
    db: psycopg.Connection[Any], runner: Runner
) -> None:
    executed: list[str] = []
    enough = asyncio.Event()

    @job
    async def heartbeat(current_job: CurrentJob) -> None:
        assert current_job.job_key is not None
        executed.append(current_job.job_key)
        if len(set(executed)) >= 4:
            enough.set()

    registry = JobRegistry([heartbeat]).set_retain_for(timedelta(minutes=10))
    registry.add_cron("* * * * * *", heartbeat, name="every-second")
    with structlog.testing.capture_logs() as logs:
        async with (
            runner(registry, concurrency=(2, 4)),
            runner(registry, concurrency=(2, 4)),
            runner(registry, concurrency=(2, 4)),
        ):
            await asyncio.wait_for(enough.wait(), 15)
    spawn_events = Counter(e["tick"] for e in logs if e["event"] == "cron_job_spawned")
    assert set(spawn_events.values()) == {1}  # each tick spawned by one runner, once
    assert len(executed) == len(set(executed))  # no tick ran twice
    rows = db.execute(
        "SELECT job_key FROM mq_jobs WHERE job_key LIKE 'cron:%' "
        "UNION ALL SELECT job_key FROM mq_history WHERE job_key LIKE 'cron:%'"
    ).fetchall()
    per_key = Counter(key for (key,) in rows)
    assert per_key, "no tick was spawned"
    assert set(per_key.values()) == {1}, per_key  # one job per tick
    assert set(executed) <= set(per_key)
    ticks = sorted(_tick_of(key, "every-second") for key in per_key)
    gaps = {b - a for a, b in itertools.pairwise(ticks)}
    assert gaps == {timedelta(seconds=1)}  # every tick, none skipped


async def test_job_cron_spawns_ticks_keyed_by_schedule_and_tick(
    db: psycopg.Connection[Any], runner: Runner
) -> None:
    seen: list[tuple[str | None, Any, datetime]] = []
    ran = asyncio.Event()

    @job(cron="* * * * * *")
    async def every_second(current_job: CurrentJob) -> None:
        seen.append((current_job.job_key, current_job.json(), db_now(db)))
        ran.set()

    registry = JobRegistry([every_second])
    assert [s.name for s in registry.schedules] == [every_second.name]  # the job's name
    before = db_now(db)
    async with runner(registry):
        await asyncio.wait_for(ran.wait(), 10)
    key, payload, started = seen[0]
    assert key is not None
    tick = _tick_of(key, every_second.name)
    assert tick.microsecond == 0
    # a tick of this run (not an old one), and the job ran no earlier than it (database clock)
    assert before - timedelta(seconds=1) < tick <= started
    assert payload is None
    row = db.execute("SELECT cron, timezone, job_name FROM mq_schedules").fetchall()
    assert row == [("* * * * * *", "UTC", every_second.name)]


async def test_add_cron_passes_payload_and_channel_args(runner: Runner) -> None:
    seen: list[tuple[Any, str, str]] = []
    ran = asyncio.Event()

    @job(channel_name="reports")
    async def report(current_job: CurrentJob) -> None:
        seen.append((current_job.json(), current_job.channel_name, current_job.channel_args))
        ran.set()

    registry = JobRegistry([report]).add_cron(
        "* * * * * *", report, payload={"kind": "daily"}, name="daily-report", channel_args="eu"
    )
    async with runner(registry):
        await asyncio.wait_for(ran.wait(), 10)
    assert seen[0] == ({"kind": "daily"}, "reports", "eu")


def _insert_schedule(db: psycopg.Connection[Any], name: str, job_name: str) -> datetime:
    """A schedule whose last tick was ten minutes ago (on a minute boundary): its runners
    were down since."""
    row = db.execute(
        "INSERT INTO mq_schedules (name, cron, job_name, last_tick) "
        "VALUES (%s, '* * * * *', %s, date_trunc('minute', now()) - interval '10 minutes') "
        "RETURNING last_tick",
        (name, job_name),
    ).fetchone()
    assert row is not None
    return row[0]


async def test_missed_ticks_within_backfill_are_spawned_once_each(
    db: psycopg.Connection[Any], runner: Runner
) -> None:
    done = asyncio.Event()
    executed: list[str] = []

    @job(name="minutely")  # the name the schedule row below is written with
    async def minutely(current_job: CurrentJob) -> None:
        assert current_job.job_key is not None
        executed.append(current_job.job_key)
        if len(executed) >= 10:
            done.set()

    last_tick = _insert_schedule(db, "minutely", "minutely")
    registry = JobRegistry([minutely]).add_cron(
        "* * * * *", minutely, backfill=timedelta(minutes=30)
    )
    async with runner(registry, concurrency=(4, 8)):
        await asyncio.wait_for(done.wait(), 10)
    ticks = sorted(_tick_of(key, "minutely") for key in executed)
    assert len(ticks) == len(set(ticks))
    assert ticks[0] == last_tick + timedelta(minutes=1)
    assert len(ticks) in (10, 11)  # 11 if a new minute began during the test
    assert {b - a for a, b in itertools.pairwise(ticks)} == {timedelta(minutes=1)}
    row = db.execute("SELECT last_tick FROM mq_schedules WHERE name = 'minutely'").fetchone()
    assert row is not None
    assert row[0] == ticks[-1]


async def test_missed_ticks_without_backfill_are_skipped(
    db: psycopg.Connection[Any], runner: Runner
) -> None:
    ran = asyncio.Event()
    executed: list[str] = []

    @job(name="minutely")  # the name the schedule row below is written with
    async def minutely(current_job: CurrentJob) -> None:
        assert current_job.job_key is not None
        executed.append(current_job.job_key)
        ran.set()

    last_tick = _insert_schedule(db, "minutely", "minutely")
    registry = JobRegistry([minutely]).add_cron("* * * * *", minutely)
    registry.set_retain_for(timedelta(minutes=10))
    async with runner(registry):
        await asyncio.wait_for(ran.wait(), 10)
        # the schedule moved past the missed ticks: the first spawn was its only one
        row = db.execute("SELECT last_tick FROM mq_schedules").fetchone()
        assert row is not None
        assert row[0] >= last_tick + timedelta(minutes=10)
    spawned = db.execute(
        "SELECT job_key FROM mq_history UNION ALL SELECT job_key FROM mq_jobs"
    ).fetchall()
    ticks = sorted(_tick_of(key, "minutely") for (key,) in spawned)
    # none of the missed ticks ran: only the tick of the minute the runner started in, which
    # is the tenth after the stored one, or the eleventh if a minute began before the runner's
    # first look (and one more if a minute began while it ran)
    assert ticks[0] in (last_tick + timedelta(minutes=10), last_tick + timedelta(minutes=11))
    assert len(ticks) <= 2
    assert {b - a for a, b in itertools.pairwise(ticks)} <= {timedelta(minutes=1)}


async def test_a_scheduled_job_keeps_the_retain_for_of_its_job(
    db: psycopg.Connection[Any], runner: Runner
) -> None:
    """Tick jobs are spawned with the options of their @job: with retain_for, the finished tick
    and its result are kept in the history."""
    ran = asyncio.Event()

    @job(cron="* * * * * *", retain_for=timedelta(minutes=10))
    async def kept_tick(current_job: CurrentJob) -> dict[str, Any]:
        ran.set()
        return {"tick": current_job.job_key}

    async with runner([kept_tick]):
        await asyncio.wait_for(ran.wait(), 10)
        # the runner completes the job just after it returns; wait for that write
        await wait_until(lambda: count_jobs(db, "job_key LIKE 'cron:%'") == 0, timeout=3)
    rows = db.execute("SELECT job_key, result::text FROM mq_history").fetchall()
    assert rows, "the completed tick job was not kept in the history"
    key, result = rows[0]
    assert json.loads(result) == {"tick": key}


async def test_a_failing_scheduled_job_goes_to_the_dead_letter_of_its_job(
    db: psycopg.Connection[Any], runner: Runner
) -> None:
    """Tick jobs are spawned with the options of their @job: one that fails for good is sent to
    its dead letter."""

    @job
    async def on_dead(current_job: CurrentJob) -> None:
        pass

    @job(cron="* * * * * *", retries=0, dead_letter=on_dead)
    async def failing_tick(current_job: CurrentJob) -> None:
        raise RuntimeError("tick failed")

    registry = JobRegistry([failing_tick, on_dead]).set_retain_for(timedelta(minutes=10))
    async with runner(registry):
        await wait_until(lambda: count_jobs(db, "state = 'f'") > 0, timeout=10)
    failed = db.execute("SELECT id FROM mq_jobs WHERE state = 'f' ORDER BY id LIMIT 1").fetchone()
    assert failed is not None
    dead_letters = db.execute(
        "SELECT payload_json->>'job_id' FROM mq_payloads WHERE name = %(name)s "
        "UNION ALL SELECT payload_json->>'job_id' FROM mq_history WHERE name = %(name)s",
        {"name": on_dead.name},
    ).fetchall()
    assert (str(failed[0]),) in dead_letters


def test_schedules_can_be_listed_and_deleted(dsn: str, db: psycopg.Connection[Any]) -> None:
    from sqlxmq_py.admin import delete_schedule, list_schedules

    @job
    async def nightly(current_job: CurrentJob) -> None:
        pass

    async def record() -> None:
        registry = JobRegistry([nightly]).add_cron("0 3 * * *", nightly, tz="Europe/Paris")
        handle = await registry.runner(dsn).run()
        await handle.stop()

    asyncio.run(record())
    (schedule,) = list_schedules(db)
    assert (schedule.name, schedule.cron, schedule.timezone) == (
        nightly.name,
        "0 3 * * *",
        "Europe/Paris",
    )
    assert schedule.job_name == nightly.name
    assert delete_schedule(db, nightly.name) is True
    assert delete_schedule(db, nightly.name) is False
    assert list_schedules(db) == []
