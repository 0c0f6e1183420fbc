"""A runner process for the workflow tests: ``python -m tests.workflows.worker DSN``.

Each step reads its parents' results, prints ``start <step>``, works a little, then records
its effect (its name and how many parents' results it saw) in the same transaction that
completes it, and returns its name. Prints ``ready`` once running; stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

import structlog

from sqlxmq_py import CurrentJob, JobRegistry, job


@job(channel_name="wf-kill", retries=5, backoff=0.05)
async def wf_step(current_job: CurrentJob) -> str:
    """One step of the 50-step workflow."""
    ctx = current_job.workflow
    assert ctx is not None
    results = await ctx.parent_results(current_job.pool)
    # every parent's result is its name: a join sees all of them
    assert all(name == value for name, value in results.items()), results
    print(f"start {ctx.step}", flush=True)
    await asyncio.sleep(0.05)  # work, so that a SIGKILL lands while steps run
    async with current_job.pool.connection() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO effects (step, parents) VALUES (%s, %s)", (ctx.step, len(results))
        )
        await current_job.complete(conn, result=ctx.step)
    return ctx.step


async def main(dsn: str) -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    handle = await JobRegistry([wf_step]).runner(dsn).set_concurrency(2, 4).run()
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
