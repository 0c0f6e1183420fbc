"""Operating schedules: the listing (expression, zone, next and last tick, backfill, enabled),
disable and enable (a disabled schedule is not ticked, and declaring it again at start-up does
not re-enable it), trigger (one job, the tick's job, ticks untouched), delete."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg_pool import ConnectionPool

from sqlxmq_py import CurrentJob, JobRegistry, job
from sqlxmq_py.admin import (
    delete_schedule,
    disable_schedule,
    enable_schedule,
    list_schedules,
    trigger_schedule,
)
from sqlxmq_py.admin._schedules import ScheduleRow
from sqlxmq_py.cron import upsert_schedules
from sqlxmq_py.sql import query

from ..helpers import Runner, count_jobs, maintenance_passed, wait_until


@job(channel_name="reports")
async def report(current_job: CurrentJob) -> None:
    pass


@job(channel_name="other")
async def bystander(current_job: CurrentJob) -> None:
    pass


async def _declare(dsn: str, registry: JobRegistry) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await upsert_schedules(conn, registry.schedules)


def _make_due(db: psycopg.Connection[Any], name: str) -> datetime:
    """Moves the schedule's clock ten minutes back: a tick is due now."""
    row = db.execute(
        "UPDATE mq_schedules SET last_tick = now() - interval '10 minutes' WHERE name = %s "
        "RETURNING last_tick",
        (name,),
    ).fetchone()
    assert row is not None
    return row[0]


def _ticks(db: psycopg.Connection[Any], name: str) -> int:
    return count_jobs(db, f"job_key LIKE 'cron:{name}:%'")


def _last_tick(db: psycopg.Connection[Any], name: str) -> datetime:
    row = db.execute("SELECT last_tick FROM mq_schedules WHERE name = %s", (name,)).fetchone()
    assert row is not None
    return row[0]


async def test_list_shows_expression_zone_ticks_backfill_and_enabled(
    dsn: str, db: psycopg.Connection[Any]
) -> None:
    registry = JobRegistry([report]).add_cron(
        "0 3 * * *", report, name="nightly", tz="Europe/Paris", backfill=timedelta(hours=2)
    )
    await _declare(dsn, registry)
    (schedule,) = list_schedules(db)
    assert (schedule.name, schedule.job_name, schedule.channel_name) == (
        "nightly",
        report.name,
        "reports",
    )
    assert (schedule.cron, schedule.timezone) == ("0 3 * * *", "Europe/Paris")
    assert schedule.backfill == timedelta(hours=2)
    assert schedule.enabled is True
    assert schedule.last_spawned_tick is None  # declared, never ticked
    assert schedule.next_tick is not None
    paris = schedule.next_tick.astimezone(ZoneInfo("Europe/Paris"))
    assert (paris.hour, paris.minute, paris.second) == (3, 0, 0)
    assert schedule.last_tick < schedule.next_tick <= schedule.last_tick + timedelta(days=1)
    async with await psycopg.AsyncConnection.connect(dsn) as aconn:
        assert await list_schedules(aconn) == [schedule]


async def test_a_disabled_schedule_is_not_ticked_and_ticks_again_once_enabled(
    dsn: str, db: psycopg.Connection[Any], runner: Runner
) -> None:
    registry = JobRegistry([report]).add_cron("* * * * * *", report, name="every-second")
    await _declare(dsn, registry)
    assert disable_schedule(db, "every-second") is True
    last_tick = _make_due(db, "every-second")
    (listed,) = list_schedules(db)
    assert (listed.enabled, listed.next_tick) == (False, None)
    # a runner that does not declare the schedule nor run its channel: only its ticks count
    async with runner([bystander], channel_names=["other"]):
        await maintenance_passed(db)
        await maintenance_passed(db)  # a whole pass, cron ticks included, ran since it was due
        assert _ticks(db, "every-second") == 0
        assert _last_tick(db, "every-second") == last_tick

        assert enable_schedule(db, "every-second") is True
        enabled_at = _last_tick(db, "every-second")
        assert enabled_at > last_tick  # the clock restarts: ticks missed meanwhile are dropped
        await wait_until(lambda: _ticks(db, "every-second") > 0)
    keys = [k for (k,) in db.execute("SELECT job_key FROM mq_jobs WHERE job_key IS NOT NULL")]
    ticks = [datetime.fromisoformat(k.removeprefix("cron:every-second:")) for k in keys]
    assert all(t > enabled_at for t in ticks)
    (listed,) = list_schedules(db)
    assert listed.enabled is True
    assert listed.last_spawned_tick is not None
    assert listed.last_spawned_tick in ticks


async def test_declaring_a_disabled_schedule_at_start_up_keeps_it_disabled(
    dsn: str, db: psycopg.Connection[Any], runner: Runner
) -> None:
    await _declare(dsn, JobRegistry([report]).add_cron("* * * * * *", report, name="beat"))
    assert disable_schedule(db, "beat") is True
    _make_due(db, "beat")
    redeclared = JobRegistry([bystander, report]).add_cron("*/2 * * * * *", report, name="beat")
    async with runner(redeclared, channel_names=["other"]):
        await maintenance_passed(db)
        await maintenance_passed(db)
        assert _ticks(db, "beat") == 0
    (listed,) = list_schedules(db)
    assert listed.cron == "*/2 * * * * *"  # the declaration updated the expression...
    assert listed.enabled is False  # ...but not the operator's disable


async def test_trigger_spawns_the_ticks_job_once_and_leaves_the_ticks_alone(
    dsn: str, db: psycopg.Connection[Any]
) -> None:
    registry = JobRegistry([report]).add_cron(
        "0 3 * * *", report, name="nightly", payload={"kind": "daily"}, channel_args="eu"
    )
    await _declare(dsn, registry)
    (before,) = list_schedules(db)
    job_id = trigger_schedule(db, "nightly")
    assert job_id is not None
    rows = db.execute(
        "SELECT j.id, p.name, j.channel_name, j.channel_args, j.job_key, p.payload_json::text "
        "FROM mq_jobs AS j JOIN mq_payloads AS p ON p.id = j.id"
    ).fetchall()
    assert len(rows) == 1
    (found, name, channel, args, key, payload) = rows[0]
    assert (found, name, channel, args, key) == (job_id, report.name, "reports", "eu", None)
    assert json.loads(payload) == {"kind": "daily"}
    (after,) = list_schedules(db)
    assert (after.last_tick, after.next_tick, after.last_spawned_tick) == (
        before.last_tick,
        before.next_tick,
        None,
    )
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as aconn:
        assert await trigger_schedule(aconn, "nightly") not in (None, job_id)
        assert await trigger_schedule(aconn, "no-such-schedule") is None
    assert count_jobs(db) == 2
    assert trigger_schedule(db, "no-such-schedule") is None


async def test_a_trigger_rolled_back_spawns_nothing(dsn: str, db: psycopg.Connection[Any]) -> None:
    await _declare(dsn, JobRegistry([report]).add_cron("0 3 * * *", report, name="nightly"))
    with psycopg.connect(dsn) as conn:
        assert trigger_schedule(conn, "nightly") is not None
        conn.rollback()
    assert count_jobs(db) == 0


async def test_unknown_names_and_delete(dsn: str, db: psycopg.Connection[Any]) -> None:
    for operate in (enable_schedule, disable_schedule, delete_schedule):
        assert operate(db, "no-such-schedule") is False
    await _declare(dsn, JobRegistry([report]).add_cron("0 3 * * *", report, name="nightly"))
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as aconn:
        assert await disable_schedule(aconn, "nightly") is True
        assert await enable_schedule(aconn, "nightly") is True
        assert await delete_schedule(aconn, "nightly") is True
        assert await delete_schedule(aconn, "nightly") is False
    assert list_schedules(db) == []


def test_an_enabled_schedule_keeps_its_clock_when_enabled_again(
    db: psycopg.Connection[Any],
) -> None:
    db.execute(
        "INSERT INTO mq_schedules (name, cron, job_name, last_tick) "
        "VALUES ('s', '* * * * *', 'j', %s)",
        (datetime(2020, 1, 1, tzinfo=UTC),),
    )
    assert enable_schedule(db, "s") is True  # already enabled: nothing to restart
    assert _last_tick(db, "s") == datetime(2020, 1, 1, tzinfo=UTC)


async def test_a_runner_that_read_a_schedule_before_it_was_disabled_spawns_nothing(
    dsn: str, db: psycopg.Connection[Any]
) -> None:
    await _declare(dsn, JobRegistry([report]).add_cron("* * * * * *", report, name="beat"))
    last_tick = _make_due(db, "beat")
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        cur = await conn.execute(query("schedules"))
        (row,) = [ScheduleRow(*r) for r in await cur.fetchall()]
        assert row.enabled  # what the runner saw...
        assert disable_schedule(db, "beat") is True  # ...before the operator's disable
        cur = await conn.execute(
            query("schedule_advance"),
            {"name": "beat", "last_tick": last_tick, "new_tick": row.now, "spawned_tick": row.now},
        )
        assert await cur.fetchone() is None  # the compare-and-set refuses: nothing is spawned
    assert _last_tick(db, "beat") == last_tick


def test_trigger_through_a_pool_and_a_deleted_schedule_declared_again_is_enabled(
    dsn: str, db: psycopg.Connection[Any]
) -> None:
    registry = JobRegistry([report]).add_cron("0 3 * * *", report, name="nightly")
    asyncio.run(_declare(dsn, registry))
    with ConnectionPool(dsn, min_size=1, max_size=1, open=True) as pool:
        job_id = trigger_schedule(pool, "nightly")
    assert job_id is not None
    assert count_jobs(db) == 1  # committed when the pool took its connection back
    assert disable_schedule(db, "nightly") is True
    assert delete_schedule(db, "nightly") is True
    asyncio.run(_declare(dsn, registry))
    assert [s.enabled for s in list_schedules(db)] == [True]
