"""``sqlxmq worker --burst``: a worker that stops by itself once its channels are drained, and
says with its exit code whether every attempt it ran completed (for CI pipelines)."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import structlog

from ..current_job import JobInfo
from ..hooks import JobOutcome, RunnerHooks
from ..runner import JobRunnerHandle

__all__ = ["BurstCounts", "stop_burst", "until_drained"]

_log: Any = structlog.get_logger("sqlxmq_py.cli")

_BURST_CHECK_EVERY = 0.25
"""--burst: seconds between two looks at the queue when no attempt ends meanwhile."""

_BURST_PENDING = b"""
SELECT EXISTS (
    SELECT 1 FROM mq_jobs AS j
    WHERE (%(channel_names)s::text[] IS NULL OR j.channel_name = ANY(%(channel_names)s::text[]))
      AND (j.state IN ('r', 'l')
           OR (j.state = 's' AND j.attempt_at <= now())
           OR (j.state = 'n' AND EXISTS (
                   SELECT 1 FROM mq_payloads AS p
                   WHERE p.id = j.id AND p.name = ANY(%(names)s::text[]))))
)
"""
"""--burst: whether a job of the worker's channels is due (ready, scheduled for a time that has
come, parked under a name the worker knows) or running (leased by any runner). Here rather than
in sql/queries.sql, which this change does not touch."""


class BurstCounts(RunnerHooks):
    """--burst: the attempts the worker settled, and a wake-up whenever one is."""

    def __init__(self) -> None:
        self.completed = 0
        self.not_completed: dict[str, int] = {}
        self.settled = asyncio.Event()

    def job_finished(self, job: JobInfo, outcome: JobOutcome, duration_s: float | None) -> None:
        if outcome == "completed":
            self.completed += 1
        elif outcome != "interrupted":  # handed back at a stop: the attempt did not fail
            self.not_completed[outcome] = self.not_completed.get(outcome, 0) + 1
        self.settled.set()


async def until_drained(
    handle: JobRunnerHandle,
    burst: BurstCounts,
    conninfo: str,
    channel_names: list[str] | None,
    names: list[str],
    first_signal: asyncio.Future[int],
) -> bool:
    """--burst: waits until no job of the worker's channels is due and none runs; False if a
    signal came first (the worker then stops as after any signal)."""
    params = {"channel_names": channel_names, "names": names}
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        while not first_signal.done():
            burst.settled.clear()  # before looking: an attempt settling meanwhile wakes us
            if handle.num_running_jobs() == 0:
                row = await (await conn.execute(_BURST_PENDING, params)).fetchone()
                if row is not None and not row[0]:
                    return True
            settled = asyncio.ensure_future(burst.settled.wait())
            waiters: set[asyncio.Future[Any]] = {settled, first_signal}
            await asyncio.wait(waiters, timeout=_BURST_CHECK_EVERY)
            settled.cancel()
    return False


async def stop_burst(handle: JobRunnerHandle, burst: BurstCounts, timeout: float) -> int:
    """--burst: stops the drained worker; returns its exit code, 0 if every attempt completed
    its job, else 1."""
    await handle.stop(timeout=timeout)
    code = 0 if not burst.not_completed else 1
    _log.info(
        "worker_burst_done",
        completed=burst.completed,
        not_completed=burst.not_completed,
        exit_code=code,
    )
    _log.info("worker_stopped", exit_code=code)
    return code
