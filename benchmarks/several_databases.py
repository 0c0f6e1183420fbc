"""Several queue databases, one runner process: ``python -m benchmarks.several_databases``.

Spawns ``--jobs`` (20,000) no-op jobs split evenly over 1, 2 and 4 databases of the same server,
then times one process running one runner per database (each at ``--concurrency``) until every
job has run. On one server the databases share its cores, disk and WAL: what splitting buys is
fewer rows per table and no lock shared between tenants, not more CPU; on separate servers each
database brings its own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import time

import psycopg
import structlog

from sqlxmq_py import CurrentJob, JobRegistry, job, migrate
from sqlxmq_py.spawn import spawn_payloads

from ._support import DEFAULT_SERVER_DSN, fresh_database, settle

__all__ = ["main"]

_left = 0
_all_done: asyncio.Event | None = None


@job(name="bench.tenant_noop")
async def tenant_noop(current_job: CurrentJob) -> None:
    """Does nothing but count down."""
    global _left
    _left -= 1
    if _left == 0 and _all_done is not None:
        _all_done.set()


async def _drain(dsns: list[str], jobs: int, concurrency: tuple[int, int]) -> float:
    global _left, _all_done
    _left = jobs
    _all_done = asyncio.Event()
    registry = JobRegistry([tenant_noop])
    started = time.perf_counter()
    handles = [await registry.runner(dsn).set_concurrency(*concurrency).run() for dsn in dsns]
    try:
        await _all_done.wait()
        return time.perf_counter() - started
    finally:
        for handle in handles:
            await handle.stop()


def _measure(server: str, databases: int, jobs: int, concurrency: tuple[int, int]) -> float:
    with contextlib.ExitStack() as stack:
        dsns = [stack.enter_context(fresh_database(server, f"tenant{i}")) for i in range(databases)]
        for dsn in dsns:
            with psycopg.connect(dsn, autocommit=True) as conn:
                migrate(conn)
            with psycopg.connect(dsn) as conn:
                spawn_payloads(conn, tenant_noop, ({"n": n} for n in range(jobs // databases)))
                conn.commit()
            settle(dsn)
        return asyncio.run(_drain(dsns, jobs // databases * databases, concurrency))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", default=os.environ.get("SQLXMQ_BENCH_DSN", DEFAULT_SERVER_DSN))
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, nargs=2, default=(10, 20))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    counts = (1, 2, 4)
    rates: dict[int, list[float]] = {k: [] for k in counts}
    for _ in range(args.repeat):
        for k in counts:
            seconds = _measure(args.dsn, k, args.jobs, tuple(args.concurrency))
            rates[k].append(args.jobs / seconds)
    print(
        f"{args.jobs:,} no-op jobs, one process, one runner per database at "
        f"set_concurrency{tuple(args.concurrency)}, median of {args.repeat} alternating runs; "
        f"load average after: {os.getloadavg()}"
    )
    for k in counts:
        median = sorted(rates[k])[len(rates[k]) // 2]
        print(f"  {k} database(s): {median:8,.0f} jobs/s  {[round(r) for r in rates[k]]}")


if __name__ == "__main__":
    main()
