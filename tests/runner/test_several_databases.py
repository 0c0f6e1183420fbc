"""Several queue databases side by side, one runner fleet: a process runs one runner per
database (by tenant, say), each job runs against the database it was spawned in, exactly once,
and a tenant's rollback drops only its own job."""

from __future__ import annotations

import asyncio
from collections import Counter

import psycopg

from sqlxmq_py import CurrentJob, JobRegistry, job, migrate

from ..helpers import running


async def test_one_process_runs_one_runner_per_database(dsn: str, empty_dsn: str) -> None:
    seen: Counter[tuple[str, str]] = Counter()
    both_done = asyncio.Event()

    @job
    async def tenant_job(current_job: CurrentJob) -> None:
        async with current_job.pool.connection() as c:
            row = await (await c.execute("SELECT current_database()")).fetchone()
        assert row is not None
        seen[(current_job.json()["db"], row[0])] += 1
        if sum(seen.values()) == 100:
            both_done.set()

    with psycopg.connect(empty_dsn, autocommit=True) as c:
        migrate(c)
    names = {}
    for label, target in (("a", dsn), ("b", empty_dsn)):
        with psycopg.connect(target) as c:
            names[label] = c.execute("SELECT current_database()").fetchone()[0]  # type: ignore[index]
            for _ in range(50):
                tenant_job.builder().set_json({"db": label}).spawn(c)
            c.commit()
        # a tenant's rolled-back work leaves nothing behind, in its own database only
        with psycopg.connect(target) as c:
            tenant_job.builder().set_json({"db": "rolled back"}).spawn(c)
            c.rollback()
    # one registry, one runner per database, in one process (as a worker would run them)
    registry = JobRegistry([tenant_job])
    async with running(dsn, registry), running(empty_dsn, registry):
        await asyncio.wait_for(both_done.wait(), 60)
    assert seen == Counter({("a", names["a"]): 50, ("b", names["b"]): 50})
