"""A runner process for process-level tests: ``python -m tests.process.worker DSN [options]``.

It prints ``ready`` once the runner has started, ``stopping`` when SIGTERM or SIGINT asks it to
stop, ``stopped`` once it has stopped gracefully (exit 0); it can be SIGKILLed at any moment.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

import psycopg
import structlog

from sqlxmq_py import BlockingCurrentJob, CurrentJob, JobRegistry, job


@job(lease=1.0)
async def hang_first(current_job: CurrentJob) -> None:
    """Attempt 1 records that it started and hangs (to be killed); later attempts complete in
    the same transaction as their effect."""
    dsn = current_job.pool.conninfo
    assert isinstance(dsn, str)
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as c:
        await c.execute("INSERT INTO starts VALUES (%s, %s)", (current_job.id, current_job.attempt))
    if current_job.attempt == 1:
        await asyncio.sleep(3600)
    async with current_job.pool.connection() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO effects VALUES (%s, %s)", (current_job.id, current_job.attempt)
        )
        await current_job.complete(conn)


@job(lease=1.0)
async def effect(current_job: CurrentJob) -> None:
    """Writes its effect and completes in one transaction: exactly once, however often killed."""
    await asyncio.sleep(0.001 * (current_job.json() % 5))
    async with current_job.pool.connection() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO effects VALUES (%s, %s)", (current_job.id, current_job.attempt)
        )
        await current_job.complete(conn)


RELEASE_LOCK = 7_340_112
"""The advisory lock that holds ``slow_thread_job`` until the test releases it."""


@job
def slow_thread_job(current_job: BlockingCurrentJob) -> None:
    """Notes its start in ``starts``, then runs until the test releases :data:`RELEASE_LOCK`
    (so that it is running when SIGTERM arrives, however slow the machine)."""
    with psycopg.connect(current_job.json()["dsn"], autocommit=True) as c:
        c.execute("INSERT INTO starts VALUES (%s, %s)", (current_job.id, current_job.attempt))
        c.execute("SELECT pg_advisory_lock(%s)", (RELEASE_LOCK,))


async def main(dsn: str, low: int, high: int, maintenance_interval: float) -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    registry = JobRegistry([hang_first, effect, slow_thread_job])
    handle = (
        await registry.runner(dsn)
        .set_concurrency(low, high)
        .set_maintenance_interval(maintenance_interval)
        .run()
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("ready", flush=True)
    await stop.wait()
    print("stopping", flush=True)
    await handle.stop(timeout=10)
    print("stopped", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("dsn")
    parser.add_argument("--concurrency", type=int, nargs=2, default=(4, 8))
    parser.add_argument("--maintenance-interval", type=float, default=0.1)
    args = parser.parse_args()
    asyncio.run(main(args.dsn, *args.concurrency, args.maintenance_interval))
    sys.exit(0)
