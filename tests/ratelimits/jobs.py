"""Jobs of the rate limit tests: each notes its start (the instant its lease recorded) in the
``starts`` table, so that tests count starts from the database's own record."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import psycopg

from sqlxmq_py import CurrentJob, job

STARTS_TABLE = "CREATE TABLE starts (job_id uuid, leased_at timestamptz, rate_keys text[])"


async def _note_start(current_job: CurrentJob) -> None:
    async with current_job.pool.connection() as conn:
        await conn.execute(
            "INSERT INTO starts SELECT id, leased_at, rate_keys FROM mq_jobs WHERE id = %s",
            (current_job.id,),
        )


@job(name="ratelimits.limited", rate_keys=["global"])
async def limited(current_job: CurrentJob) -> None:
    """Carries the key ``global`` (and any more its builder adds)."""
    await _note_start(current_job)


@job(name="ratelimits.free")
async def free(current_job: CurrentJob) -> None:
    """Carries no key."""
    await _note_start(current_job)


def starts(db: psycopg.Connection[Any], key: str | None = None) -> list[datetime]:
    """The recorded starts (of the jobs carrying ``key``), in time order."""
    if key is None:
        rows = db.execute("SELECT leased_at FROM starts ORDER BY leased_at").fetchall()
    else:
        rows = db.execute(
            "SELECT leased_at FROM starts WHERE %s = ANY(rate_keys) ORDER BY leased_at", (key,)
        ).fetchall()
    return [at for (at,) in rows]


def started(db: psycopg.Connection[Any]) -> int:
    """How many starts are recorded."""
    ((n,),) = db.execute("SELECT count(*) FROM starts").fetchall()
    return int(n)


def assert_strict(at: list[datetime], max_starts: int, period: timedelta) -> None:
    """No half-open window of ``period`` holds more than ``max_starts`` of the starts ``at``
    (sorted): each start is at least ``period`` after the one ``max_starts`` before it."""
    for i in range(len(at) - max_starts):
        assert at[i + max_starts] - at[i] >= period, (
            f"starts {i} and {i + max_starts} are {at[i + max_starts] - at[i]} apart: "
            f"{max_starts + 1} starts within {period}"
        )


def state_counts(db: psycopg.Connection[Any]) -> dict[str, int]:
    """Unfinished jobs by state code."""
    return {
        state: int(n)
        for state, n in db.execute("SELECT state, count(*) FROM mq_jobs GROUP BY state")
    }
