"""drain() and rate limits: by default a keyed job whose budget is spent is deferred as under a
runner, and the drain says so (``deferred``) instead of silently not running it, goes on with
the other jobs, and does not loop on it with ``with_scheduled``; ``rate_limits=False`` runs every
job and leaves the rules and windows as they were, also on a pool (committed data)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from sqlxmq_py import CurrentJob, JobRegistry, job
from sqlxmq_py.admin import list_rate_limits, set_rate_limit
from sqlxmq_py.testing import Deferred, drain, run_pending

HOUR = timedelta(hours=1)


@job(name="kit.call_api", channel_name="kit", rate_keys=["api"])
async def call_api(current_job: CurrentJob) -> str:
    """Carries the key ``api``."""
    return "called"


@job(name="kit.plain", channel_name="kit")
async def plain(current_job: CurrentJob) -> str:
    """Carries no key."""
    return "plain"


def registry() -> JobRegistry:
    return JobRegistry([call_api, plain]).add_rate_limit("api", 1, per=HOUR)


async def test_a_spent_key_defers_the_job_and_the_drain_says_until_when(
    sqlxmq_aconn: psycopg.AsyncConnection[Any],
) -> None:
    ids = [await call_api.builder().spawn(sqlxmq_aconn) for _ in range(3)]
    free = await plain.builder().spawn(sqlxmq_aconn)

    ran = await drain(sqlxmq_aconn, registry())  # the registry's rule, written as a runner does

    assert sorted(r.name for r in ran) == ["kit.call_api", "kit.plain"]
    assert free in {r.id for r in ran}  # a deferred job first in line stops nobody
    assert [type(d) for d in ran.deferred] == [Deferred, Deferred]
    assert {d.id for d in ran.deferred} | {r.id for r in ran if r.name == "kit.call_api"} == set(
        ids
    )
    assert {d.rate_keys for d in ran.deferred} == {("api",)}
    cur = await sqlxmq_aconn.execute("SELECT starts[1] FROM mq_rate_windows")
    ((start,),) = await cur.fetchall()
    assert sorted(d.until for d in ran.deferred)[0] == start + HOUR
    cur = await sqlxmq_aconn.execute("SELECT count(*) FROM mq_jobs WHERE state = 's'")
    assert await cur.fetchone() == (2,)


async def test_with_scheduled_a_deferred_job_is_not_brought_back_forever(
    sqlxmq_aconn: psycopg.AsyncConnection[Any],
) -> None:
    for _ in range(3):
        await call_api.builder().spawn(sqlxmq_aconn)
    ran = await drain(sqlxmq_aconn, registry(), with_scheduled=True, retries="now", limit=5)
    assert len(ran) == 1
    assert len(ran.deferred) == 2
    # a second drain meets them again (scheduled), and again defers them
    again = await drain(sqlxmq_aconn, registry(), with_scheduled=True)
    assert list(again) == []
    assert len(again.deferred) == 2


async def test_rate_limits_false_runs_everything_and_counts_nothing(
    sqlxmq_aconn: psycopg.AsyncConnection[Any],
) -> None:
    await set_rate_limit(sqlxmq_aconn, "api", 1, per=HOUR)
    for _ in range(3):
        await call_api.builder().spawn(sqlxmq_aconn)
    ran = await drain(sqlxmq_aconn, registry(), rate_limits=False)
    assert [r.outcome for r in ran] == ["completed"] * 3
    assert ran.deferred == []
    cur = await sqlxmq_aconn.execute(
        "SELECT coalesce(sum(cardinality(starts)), 0)::int FROM mq_rate_windows"
    )
    assert await cur.fetchone() == (0,)  # no start counted
    assert [r.key_pattern for r in await list_rate_limits(sqlxmq_aconn)] == ["api"]


async def test_rate_limits_false_on_a_pool_never_shows_the_rules_gone(
    sqlxmq_apool: AsyncConnectionPool[Any], sqlxmq_dsn: str
) -> None:
    async with sqlxmq_apool.connection() as conn:
        await set_rate_limit(conn, "api", 1, per=HOUR)
        for _ in range(2):
            await call_api.builder().spawn(conn)
    ran = await drain(sqlxmq_apool, JobRegistry([call_api]), rate_limits=False)
    assert len(ran) == 2
    with psycopg.connect(sqlxmq_dsn, autocommit=True) as outside:
        assert outside.execute("SELECT key_pattern, max_starts FROM mq_rate_limits").fetchall() == [
            ("api", 1)
        ]


def test_run_pending_honours_and_ignores_them_alike(
    sqlxmq_conn: psycopg.Connection[Any],
) -> None:
    for _ in range(2):
        call_api.builder().spawn(sqlxmq_conn)
    ran = run_pending(sqlxmq_conn, registry())
    assert len(ran) == 1
    assert len(ran.deferred) == 1
    ran = run_pending(sqlxmq_conn, registry(), rate_limits=False, with_scheduled=True)
    assert [r.name for r in ran] == ["kit.call_api"]
