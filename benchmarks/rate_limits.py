"""Rows RL1-RL4: what a rate limit costs at the lease (``--only rate-limits``).

RL1 drains 20,000 no-op jobs without rate keys alone; RL2 drains the same beside 10,000 rate
keys (``customer:<n>``, one rule ``customer:*`` of 1 start per hour) whose budgets are all
exhausted, each holding one limited job queued before the unlimited ones, in the same channel:
the runner meets every limited job at the head of the queue, defers it in the lease (it becomes
scheduled for an hour) and carries on with the unlimited ones. Both run one worker process at
``set_concurrency(10, 20)``; RL3 is RL2's rate over RL1's (the target: it must not collapse).
The limited jobs are still queued (deferred) when RL2's unlimited jobs are done. RL4 is RL2 with
the same 10,000 limited jobs on 10 keys: a deferral, not a key, is what costs.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import psycopg

from sqlxmq_py import spawn_many
from sqlxmq_py.admin import set_rate_limit

from ._report import AtLeast, Row
from ._support import (
    WORKER_LOOP,
    Settings,
    fresh_database,
    interleaved,
    median,
    settle,
    wait_until_done,
    worker_processes,
)
from .systems.sqlxmq_system import SYSTEM, noop

__all__ = ["run"]

CONCURRENCY = (10, 20)
UNLIMITED_PENDING = "SELECT EXISTS (SELECT 1 FROM mq_jobs WHERE rate_keys IS NULL)"

EXHAUST = """
INSERT INTO mq_rate_windows (rate_key, starts, idle_at)
SELECT 'customer:' || n, ARRAY[now()], now() + interval '1 hour'
FROM generate_series(0, %(keys)s - 1) AS n
"""
"""Every key has started its one job of the hour: its budget is exhausted."""


def _fill_limited(dsn: str, keys: int, limited: int) -> None:
    with psycopg.connect(dsn) as conn:
        set_rate_limit(conn, "customer:*", 1, per=timedelta(hours=1))
        conn.execute(EXHAUST, {"keys": keys})
        for start in range(0, limited, 5_000):
            builders = [
                noop.builder().add_rate_key(f"customer:{n % keys}")
                for n in range(start, min(limited, start + 5_000))
            ]
            spawn_many(conn, builders)
        conn.commit()


def _drain(settings: Settings, jobs: int, keys: int, limited: int) -> dict[str, Any]:
    """One drain of ``jobs`` unlimited jobs, beside ``limited`` jobs spread over ``keys``
    exhausted keys (0: none)."""
    with fresh_database(settings.server_dsn, "rate_limits") as dsn:
        SYSTEM.prepare(dsn)
        if keys:
            _fill_limited(dsn, keys, limited)
        SYSTEM.fill(dsn, jobs)
        settle(dsn)
        options = {"concurrency": list(CONCURRENCY), "loop": WORKER_LOOP}
        with worker_processes("sqlxmq", dsn, 1, options) as (worker,):
            started = time.perf_counter()
            worker.go()
            finished = wait_until_done(
                dsn, UNLIMITED_PENDING, timeout=60 + jobs / 100, workers=[worker]
            )
            with psycopg.connect(dsn) as conn:
                row = conn.execute(
                    "SELECT count(*) FILTER (WHERE state = 's'), count(*) FROM mq_jobs"
                ).fetchone()
            worker.stop()
    assert row is not None
    result = {
        "jobs": jobs,
        "keys": keys,
        "seconds": finished - started,
        "rate": jobs / (finished - started),
        "deferred": row[0],
        "left": row[1],
    }
    settings.debug(f"rate limits, {keys} exhausted keys: {result}")
    return result


def run(settings: Settings) -> list[Row]:
    """Rows RL1-RL4."""
    jobs = settings.pick(20_000, 10_000)
    keys = settings.pick(10_000, 5_000)
    settings.log(
        f"drain {jobs:,} unlimited jobs alone, then beside {keys:,} exhausted rate keys, "
        f"at {CONCURRENCY}"
    )
    shapes = {"alone": (0, 0), "beside": (keys, keys), "few keys": (10, keys)}
    runs = interleaved(settings, list(shapes), lambda label: _drain(settings, jobs, *shapes[label]))
    alone = median([r["rate"] for r in runs["alone"]])
    beside = median([r["rate"] for r in runs["beside"]])
    few = median([r["rate"] for r in runs["few keys"]])
    deferred = max(r["deferred"] for r in runs["beside"])
    return [
        Row(
            number="RL1",
            scenario=f"drain {jobs:,} no-op jobs without rate keys, alone, {CONCURRENCY}",
            unit="jobs/s",
            sqlxmq=alone,
            details={"runs": runs["alone"]},
        ),
        Row(
            number="RL2",
            scenario=f"the same beside {keys:,} exhausted rate keys, one limited job each, "
            "queued first",
            unit="jobs/s",
            sqlxmq=beside,
            notes=[
                f"limited jobs deferred (scheduled) when the unlimited ones were done: "
                f"{deferred:,} of {keys:,}"
            ],
            details={"runs": runs["beside"]},
        ),
        Row(
            number="RL3",
            scenario="RL2's rate over RL1's",
            unit="x",
            sqlxmq=beside / alone,
            target=AtLeast(0.5),
        ),
        Row(
            number="RL4",
            scenario=f"RL2 with its {keys:,} limited jobs on 10 keys instead: the cost is per "
            "deferral, not per key",
            unit="jobs/s",
            sqlxmq=few,
            notes=[f"{few / beside:.2f} x RL2's rate"],
            details={"runs": runs["few keys"]},
        ),
    ]
