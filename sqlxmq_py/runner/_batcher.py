"""Completion and failure batching: one statement for all the jobs that finished meanwhile.

While a batch is being written, newly finished jobs queue up; the next batch takes them all. At
low load a job is written at once; at high load batches grow, and the database sees a fraction
of a statement per job.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from .._logging import logger
from ..current_job import LeasedJob
from ..sql import query
from ._connection import DedicatedConnection

__all__ = ["Batcher", "Completion", "Failure"]

MAX_BATCH = 1000


@dataclass(slots=True)
class Completion:
    """A job to complete, with its result (JSON text, when it is kept); ``waiter`` is
    resolved once the batch is durable."""

    job: LeasedJob
    waiter: asyncio.Future[bool] | None
    result: str | None


@dataclass(slots=True)
class Failure:
    """A failed attempt to record, with its error text and retry delay."""

    job: LeasedJob
    error: str
    delay: timedelta
    exc: BaseException


class Batcher:
    """Writes completions and failures in batches on the runner's completion connection."""

    def __init__(
        self,
        conn: DedicatedConnection,
        on_completed: Callable[[Completion, bool], None],
        on_failed: Callable[[Failure, str | None], None],
        default_retain: timedelta,
    ) -> None:
        """``on_completed(item, deleted)`` and ``on_failed(item, new_state)`` report results;
        ``deleted`` is False and ``new_state`` is None when the lease was gone. Completed jobs
        are kept in the history for ``default_retain`` unless they set their own."""
        self._conn = conn
        self._default_retain = default_retain
        self._on_completed = on_completed
        self._on_failed = on_failed
        self._completions: list[Completion] = []
        self._failures: list[Failure] = []
        self._pending = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    def complete(
        self,
        job: LeasedJob,
        waiter: asyncio.Future[bool] | None = None,
        result: str | None = None,
    ) -> None:
        """Queues a completion."""
        self._completions.append(Completion(job, waiter, result))
        self._wake()

    def fail(self, job: LeasedJob, error: str, delay: timedelta, exc: BaseException) -> None:
        """Queues a failed attempt."""
        self._failures.append(Failure(job, error, delay, exc))
        self._wake()

    def _wake(self) -> None:
        self._idle.clear()
        self._pending.set()

    async def drained(self) -> None:
        """Returns once everything queued so far has been written."""
        await self._idle.wait()

    async def run(self) -> None:
        """Writes batches until cancelled."""
        while True:
            await self._pending.wait()
            self._pending.clear()
            while self._completions or self._failures:
                completions = self._completions[:MAX_BATCH]
                del self._completions[:MAX_BATCH]
                failures = self._failures[:MAX_BATCH]
                del self._failures[:MAX_BATCH]
                try:
                    if completions:
                        await self._write_completions(completions)
                    if failures:
                        await self._write_failures(failures)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    # not a lost connection (those are retried): the batch cannot be written;
                    # its leases will expire and the jobs run again
                    logger.error("batch_write_failed", error=str(exc), jobs=len(completions))
                    for item in completions:
                        self._on_completed(item, False)
                    for failure in failures:
                        self._on_failed(failure, None)
            self._idle.set()

    async def _write_completions(self, items: list[Completion]) -> None:
        rows = await self._conn.execute(
            query("complete"),
            {
                "ids": [c.job.id for c in items],
                "tokens": [c.job.token for c in items],
                "results": [c.result for c in items],
                "default_retain": self._default_retain,
            },
        )
        deleted = {row[0] for row in rows}
        for item in items:
            self._on_completed(item, item.job.id in deleted)

    async def _write_failures(self, items: list[Failure]) -> None:
        rows = await self._conn.execute(
            query("fail"),
            {
                "ids": [f.job.id for f in items],
                "tokens": [f.job.token for f in items],
                "delays": [f.delay for f in items],
                "errors": [f.error for f in items],
            },
        )
        states: dict[object, str] = {row[0]: row[1] for row in rows}
        for item in items:
            self._on_failed(item, states.get(item.job.id))
