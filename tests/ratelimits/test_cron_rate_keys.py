"""Cron ticks carry their job's rate keys (migration 0015): the schedule stores them, every tick
(and a triggered run) is spawned with them, and a runner defers the ticks' jobs like any other
keyed job's; a declaration may replace them, and a new deploy's keys replace the stored ones."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg
import pytest

from sqlxmq_py import CurrentJob, JobRegistry, RateLimitError, job
from sqlxmq_py.admin import set_rate_limit, trigger_schedule
from sqlxmq_py.cron import run_due_schedules, upsert_schedules
from sqlxmq_py.pull import fetch

from ..helpers import Runner, wait_until
from .jobs import STARTS_TABLE, started, state_counts

HOUR = timedelta(hours=1)


@job(name="ratelimits.ticking", cron="* * * * * *", rate_keys=["cron-api", "shared"])
async def ticking(current_job: CurrentJob) -> None:
    async with current_job.pool.connection() as conn:
        await conn.execute(
            "INSERT INTO starts SELECT id, leased_at, rate_keys FROM mq_jobs WHERE id = %s",
            (current_job.id,),
        )


@job(name="ratelimits.minutely", rate_keys=["cron-api"])
async def minutely(current_job: CurrentJob) -> None:
    pass


def keyed_scheduled(db: psycopg.Connection[Any]) -> int:
    ((n,),) = db.execute(
        "SELECT count(*) FROM mq_jobs WHERE state = 's' AND rate_keys = ARRAY['cron-api', 'shared']"
    ).fetchall()
    return int(n)


async def test_a_secondly_cron_job_with_a_spent_key_is_deferred_under_a_runner(
    db: psycopg.Connection[Any], runner: Runner
) -> None:
    db.execute(STARTS_TABLE)
    registry = JobRegistry([ticking]).add_rate_limit("cron-api", 1, per=HOUR)
    async with runner(registry):
        await wait_until(lambda: started(db) == 1 and keyed_scheduled(db) >= 2)
    assert started(db) == 1  # the next ticks waited for the key, an hour after the start
    ((start,),) = db.execute("SELECT leased_at FROM starts").fetchall()
    untils = [u for (u,) in db.execute("SELECT attempt_at FROM mq_jobs WHERE state = 's'")]
    assert min(untils) == start + HOUR


async def test_backfilled_ticks_and_a_triggered_run_carry_the_keys(
    dsn: str, conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    registry = JobRegistry([minutely]).add_cron("* * * * *", minutely, backfill=HOUR)
    set_rate_limit(conn, "cron-api", 2, per=HOUR)
    conn.commit()
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as aconn:
        await upsert_schedules(aconn, registry.schedules)
        await aconn.execute(
            "UPDATE mq_schedules SET last_tick = date_trunc('minute', now()) - interval '5 min'"
        )
        spawned = await run_due_schedules(aconn)
    assert len(spawned) in (5, 6)  # 6 if a minute began meanwhile
    assert db.execute("SELECT DISTINCT rate_keys FROM mq_jobs").fetchall() == [(["cron-api"],)]
    assert len(fetch(conn, None, limit=20)) == 2
    conn.commit()
    assert state_counts(db) == {"l": 2, "s": len(spawned) - 2}
    job_id = trigger_schedule(conn, minutely.name)
    conn.commit()
    assert db.execute("SELECT rate_keys FROM mq_jobs WHERE id = %s", (job_id,)).fetchone() == (
        ["cron-api"],
    )


async def test_a_declaration_replaces_or_drops_the_keys_and_a_redeploy_updates_them(
    dsn: str, db: psycopg.Connection[Any]
) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as aconn:
        await upsert_schedules(aconn, JobRegistry([ticking]).schedules)
        assert db.execute("SELECT rate_keys FROM mq_schedules").fetchall() == [
            (["cron-api", "shared"],)
        ]
        replaced = JobRegistry([minutely]).add_cron(
            "* * * * *", minutely, name=ticking.name, rate_keys=["other"]
        )
        await upsert_schedules(aconn, replaced.schedules)
        assert db.execute("SELECT rate_keys FROM mq_schedules").fetchall() == [(["other"],)]
        dropped = JobRegistry([minutely]).add_cron(
            "* * * * *", minutely, name=ticking.name, rate_keys=[]
        )
        await upsert_schedules(aconn, dropped.schedules)
        assert db.execute("SELECT rate_keys FROM mq_schedules").fetchall() == [(None,)]
    with pytest.raises(RateLimitError, match="'\\*'"):
        JobRegistry([minutely]).add_cron("* * * * *", minutely, rate_keys=["customer:*"])
