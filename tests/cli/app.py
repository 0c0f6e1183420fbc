"""Jobs for the CLI tests: ``sqlxmq worker tests.cli.app:registry``.

``gated`` and ``gated_thread`` record that they started, then wait for a ``NOTIFY cli_gate``
(or forever, for the thread job), so that a test can signal the worker while they run.
"""

from __future__ import annotations

import threading
from typing import Any

import psycopg

from sqlxmq_py import BlockingCurrentJob, CurrentJob, JobRegistry, job

GATE = "cli_gate"


async def _record_start(current_job: CurrentJob, conn: psycopg.AsyncConnection[Any]) -> None:
    await conn.execute(
        "INSERT INTO starts (job_id, attempt) VALUES (%s, %s)",
        (current_job.id, current_job.attempt),
    )


@job(channel_name="cli")
async def gated(current_job: CurrentJob) -> None:
    """Starts, waits for the gate to open, then writes its effect and completes with it."""
    dsn = current_job.pool.conninfo
    assert isinstance(dsn, str)
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as listener:
        await listener.execute(f"LISTEN {GATE}")
        await _record_start(current_job, listener)
        async for _ in listener.notifies():
            break
    async with current_job.pool.connection() as conn, conn.transaction():
        await conn.execute("INSERT INTO effects (job_id) VALUES (%s)", (current_job.id,))
        await current_job.complete(conn)


_never = threading.Event()


@job(channel_name="cli")
def gated_thread(current_job: BlockingCurrentJob) -> None:
    """A plain function that starts and never returns (it cannot be interrupted)."""
    with psycopg.connect(current_job.json()["dsn"], autocommit=True) as conn:
        conn.execute(
            "INSERT INTO starts (job_id, attempt) VALUES (%s, %s)",
            (current_job.id, current_job.attempt),
        )
    _never.wait()


@job(channel_name="cli")
async def quick(current_job: CurrentJob) -> None:
    """Completes at once."""


@job(channel_name="cli", retries=0)
async def boom(current_job: CurrentJob) -> None:
    """Fails for good."""
    raise RuntimeError("boom")


registry = JobRegistry([gated, gated_thread, quick, boom])


def make_registry() -> JobRegistry:
    """The same jobs, from a factory function."""
    return JobRegistry([quick])
