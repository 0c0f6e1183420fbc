"""A runner process for the batch tests: ``python -m tests.batches.worker DSN``.

Members fail their first attempt when their payload is a multiple of 7 (and complete on the
retry); each callback records, in the same transaction that completes it, what it saw of its
batch. Prints ``ready`` once running; stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal

import structlog

from sqlxmq_py import CurrentJob, JobRegistry, job
from sqlxmq_py.batch import batch_id_of, batch_results, batch_status


@job(channel_name="batch-members", retries=3, backoff=0.01)
async def batch_member(current_job: CurrentJob) -> int:
    """Returns its payload doubled, after failing a first attempt for multiples of 7."""
    value = int(current_job.json())
    if value % 7 == 0 and current_job.attempt == 1:
        raise RuntimeError(f"first attempt of {value} fails")
    return value * 2


@job(channel_name="batch-callbacks")
async def batch_callback(current_job: CurrentJob) -> None:
    """Records the batch's counts and its members' results, exactly once."""
    batch_id = batch_id_of(current_job)
    assert batch_id is not None
    async with current_job.pool.connection() as conn, conn.transaction():
        status = await batch_status(conn, batch_id)
        assert status is not None
        results = await batch_results(conn, batch_id)
        await conn.execute(
            "INSERT INTO callback_runs (batch_id, kind, job_id, status, results) "
            "VALUES (%s, %s, %s, %s, %s)",
            (
                batch_id,
                current_job.json(),
                current_job.id,
                json.dumps([status.completed, status.failed, status.cancelled]),
                json.dumps(sorted(m.result for m in results if m.state == "completed")),
            ),
        )
        await current_job.complete(conn)


async def main(dsn: str) -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    handle = await JobRegistry([batch_member, batch_callback]).runner(dsn).run()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("ready", flush=True)
    await stop.wait()
    await handle.stop(timeout=10)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("dsn")
    asyncio.run(main(parser.parse_args().dsn))
