"""A rate limit across runner processes: starts are counted from the instants the leases
recorded in the database, never from the test's clock."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg
import pytest

from sqlxmq_py import spawn_many
from sqlxmq_py.admin import set_rate_limit

from ..helpers import wait_until
from ..processes import Processes
from .jobs import STARTS_TABLE, assert_strict, free, limited, started, starts


async def run_limited(
    dsn: str,
    db: psycopg.Connection[Any],
    processes: Processes,
    *,
    runners: int,
    rate: int,
    seconds: int,
) -> None:
    """``runners`` processes drain limited jobs (``rate`` per second) for about ``seconds``,
    beside as many unlimited ones; no second holds more than ``rate`` limited starts."""
    db.execute(STARTS_TABLE)
    period = timedelta(seconds=1)
    total = rate * seconds + 1  # the last start is at least `seconds` after the first
    with psycopg.connect(dsn) as conn:
        set_rate_limit(conn, "global", rate, per=period)
        spawn_many(conn, [limited.builder() for _ in range(total)])
        spawn_many(conn, [free.builder() for _ in range(total)])
        conn.commit()
    for _ in range(runners):
        processes.python("-m", "tests.ratelimits.worker", dsn, ready="ready")
    await wait_until(lambda: started(db) == 2 * total, timeout=seconds + 60, interval=0.1)
    at = starts(db, "global")
    assert len(at) == total
    assert_strict(at, rate, period)
    assert at[-1] - at[0] >= seconds * period


async def test_5_per_second_across_2_runner_processes_is_never_exceeded_over_3_s(
    dsn: str, db: psycopg.Connection[Any], processes: Processes
) -> None:
    await run_limited(dsn, db, processes, runners=2, rate=5, seconds=3)


@pytest.mark.slow
async def test_10_per_second_across_3_runner_processes_is_never_exceeded_over_30_s(
    dsn: str, db: psycopg.Connection[Any], processes: Processes
) -> None:
    await run_limited(dsn, db, processes, runners=3, rate=10, seconds=30)
