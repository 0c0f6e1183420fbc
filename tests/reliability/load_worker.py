"""A runner process for the load tests: ``python -m tests.reliability.load_worker DSN [options]``.

Its job records every execution (job id, group, process, time) in memory and copies them into
the ``executions`` table in batches, so that recording costs the database little next to the
queue's own work. It prints ``ready`` once the runner has started and, on SIGTERM, stops the
runner, writes what is left and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import time
import uuid
from contextlib import suppress

import psycopg
import structlog

from sqlxmq_py import CurrentJob, JobRegistry, job

EXECUTIONS = (
    "CREATE TABLE executions (job_id uuid NOT NULL, grp text NOT NULL, pid int NOT NULL, "
    "at double precision NOT NULL)"
)

_done: list[tuple[uuid.UUID, str, int, float]] = []


@job(channel_name="load")
async def load_job(current_job: CurrentJob) -> None:
    """Does nothing but say that it ran."""
    _done.append((current_job.id, current_job.channel_args, os.getpid(), time.time()))


async def _flush(dsn: str) -> None:
    batch = _done[:]
    del _done[: len(batch)]
    if not batch:
        return
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        async with conn.cursor().copy("COPY executions (job_id, grp, pid, at) FROM STDIN") as cp:
            for row in batch:
                await cp.write_row(row)
        await conn.commit()


async def _flush_every(dsn: str, interval: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
        await _flush(dsn)


async def main(dsn: str, low: int, high: int) -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    handle = await (
        JobRegistry([load_job]).runner(dsn).set_concurrency(low, high).set_poll_interval(1).run()
    )
    stop = asyncio.Event()
    flusher = asyncio.create_task(_flush_every(dsn, 0.5, stop))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("ready", flush=True)
    await stop.wait()
    await handle.stop(timeout=10)
    await flusher
    await _flush(dsn)
    print("stopped", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("dsn")
    parser.add_argument("--concurrency", type=int, nargs=2, default=(20, 40))
    args = parser.parse_args()
    asyncio.run(main(args.dsn, *args.concurrency))
