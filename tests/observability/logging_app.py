"""An application that runs one failing and one completing job, then exits:
``python -m tests.observability.logging_app DSN MODE``. MODE says how the application set up
logging: ``none`` (not at all), ``basic-warning`` (``logging.basicConfig(level=WARNING)``) or
``basic-debug``. It prints ``done`` on stdout at the end, nothing else of its own."""

from __future__ import annotations

import asyncio
import logging
import sys

from sqlxmq_py import CurrentJob, JobRegistry, job, spawn_many

finished: list[str] = []
both = asyncio.Event()


def _finished(what: str) -> None:
    finished.append(what)
    if len(finished) == 2:
        both.set()


@job(retries=0)
async def fails(current_job: CurrentJob) -> None:
    raise RuntimeError("boom in the job")


@job
async def works(current_job: CurrentJob) -> None:
    _finished("works")


async def main(dsn: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        spawn_many(conn, [fails.builder(), works.builder()])
    registry = JobRegistry([fails, works]).set_error_handler(lambda job, exc: _finished("fails"))
    async with await registry.runner(dsn).set_poll_interval(0.2).run():
        await both.wait()


if __name__ == "__main__":
    dsn, mode = sys.argv[1], sys.argv[2]
    if mode == "basic-warning":
        logging.basicConfig(level=logging.WARNING)
    elif mode == "basic-debug":
        logging.basicConfig(level=logging.DEBUG)
    asyncio.run(main(dsn))
    print("done")
