"""Outcome batching: one statement for all the attempts that ended meanwhile.

An attempt hands its outcome (complete, fail, or hand the lease back) to the batcher and awaits
a future that resolves once the batch holding it is written. While a batch is being written,
new outcomes queue up; the next batch takes them all. At low load an outcome is written at
once; at high load batches grow and the database sees a fraction of a statement per job.

One bad row never spoils a batch: a statement that fails is retried row by row, and a row that
still fails is written in its plainest form (no result; the error's first line). A job whose
row another transaction has locked (one that is spawning its continuations, say) is not waited
for: it is retried in a later batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

from .._logging import logger
from ..current_job import LeasedJob
from ..sql import query
from ._connection import DedicatedConnection
from ._execution import runner_identity, safe_text

__all__ = ["MAX_BATCH", "Batcher", "Outcome"]

MAX_BATCH = 1000
"""The most outcomes of one kind written in one statement."""

_BUSY_RETRY_FIRST = 0.02
_BUSY_RETRY_MAX = 1.0

Kind = Literal["complete", "fail", "release", "park"]
Outcome = str | None
"""What the database says: 'completed'; 'r', 's', 'f' or 'c' for a failure (ready again,
scheduled, failed for good, cancelled); 'interrupted' or 'cancelled' for a hand-back; 'parked'
or 'cancelled' for a job whose name the runner does not know; None when
the lease was gone (or the outcome could not be written at all)."""


@dataclass(slots=True, eq=False)
class _Item:
    kind: Kind
    job: LeasedJob
    done: asyncio.Future[Outcome]
    result: str | None = None
    error: str = ""
    delay: timedelta = timedelta(0)
    retry_wait: float = field(default=_BUSY_RETRY_FIRST)


class Batcher:
    """Writes outcomes in batches on the runner's completion connection."""

    def __init__(self, conn: DedicatedConnection, default_retain: timedelta) -> None:
        """Completed jobs are kept in the history for ``default_retain`` unless they set their
        own."""
        self._conn = conn
        self._default_retain = default_retain
        self._queues: dict[Kind, list[_Item]] = {
            "complete": [],
            "fail": [],
            "release": [],
            "park": [],
        }
        self._pending = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._waiting_retry = 0
        self._loop = asyncio.get_running_loop()

    def complete(self, job: LeasedJob, result: str | None = None) -> asyncio.Future[Outcome]:
        """Queues a completion (``result``: JSON text, kept if the job keeps history)."""
        return self._add(_Item("complete", job, self._loop.create_future(), result=result))

    def fail(self, job: LeasedJob, error: str, delay: timedelta) -> asyncio.Future[Outcome]:
        """Queues a failed attempt with its error text and retry delay."""
        return self._add(_Item("fail", job, self._loop.create_future(), error=error, delay=delay))

    def release(self, job: LeasedJob) -> asyncio.Future[Outcome]:
        """Queues a hand-back of the lease (no attempt used up)."""
        return self._add(_Item("release", job, self._loop.create_future()))

    def park(self, job: LeasedJob, reason: str) -> asyncio.Future[Outcome]:
        """Queues the parking of a job whose name the runner does not know (no attempt used
        up; ``reason`` is recorded as its last error)."""
        return self._add(_Item("park", job, self._loop.create_future(), error=reason))

    def _add(self, item: _Item) -> asyncio.Future[Outcome]:
        self._queues[item.kind].append(item)
        self._idle.clear()
        self._pending.set()
        return item.done

    async def drained(self) -> None:
        """Returns once everything queued so far has been written."""
        await self._idle.wait()

    async def run(self) -> None:
        """Writes batches until cancelled."""
        while True:
            await self._pending.wait()
            self._pending.clear()
            while any(self._queues.values()):
                for kind, queue in self._queues.items():
                    if queue:
                        batch = queue[:MAX_BATCH]
                        del queue[:MAX_BATCH]
                        await self._write(kind, batch)
            if not self._waiting_retry:
                self._idle.set()

    async def _write(self, kind: Kind, items: list[_Item]) -> None:
        try:
            outcomes = await self._execute(kind, items)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # not a lost connection (those are retried inside): this batch cannot be written
            # as a whole; row by row, a bad row cannot take its neighbours down
            logger.warning(
                "batch_write_failed", action=kind, jobs=len(items), error=safe_text(exc, 500)
            )
            for item in items:
                await self._write_alone(kind, item)
            return
        self._settle(items, outcomes)

    async def _write_alone(self, kind: Kind, item: _Item) -> None:
        for plain in (False, True):
            if plain:  # the plainest form of the row: no result, the error's first line
                item.result = None
                item.error = item.error.split("\n", 1)[0][:1000]
            try:
                self._settle([item], await self._execute(kind, [item]))
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = safe_text(exc, 500)
        logger.error(
            "outcome_not_recorded",
            action=kind,
            job_id=str(item.job.id),
            job_name=item.job.name,
            error=error,
            detail="the job runs again once its lease expires",
        )
        if not item.done.done():
            item.done.set_result(None)

    async def _execute(self, kind: Kind, items: Sequence[_Item]) -> dict[int, str]:
        params: dict[str, object] = {
            "ids": [i.job.id for i in items],
            "tokens": [i.job.token for i in items],
        }
        if kind == "complete":
            params.update(
                results=[i.result for i in items], default_retain=self._default_retain, wait=False
            )
        elif kind == "fail":
            params.update(
                delays=[i.delay for i in items], errors=[i.error for i in items], wait=False
            )
        elif kind == "park":
            params.update(errors=[i.error for i in items])
        else:
            params.update(by=runner_identity(), started=True)

        rows = await self._conn.execute(query(kind), params)
        # by the id's int: hashed in C, where a UUID's hash is Python code
        return {row[0].int: row[1] for row in rows}

    def _settle(self, items: list[_Item], outcomes: dict[int, str]) -> None:
        for item in items:
            outcome = outcomes.get(item.job.id.int)
            if outcome == "busy":
                self._retry_later(item)
            elif not item.done.done():
                item.done.set_result(outcome)

    def _retry_later(self, item: _Item) -> None:
        """Another transaction holds the job's row: try again in a later batch."""
        self._waiting_retry += 1
        wait, item.retry_wait = item.retry_wait, min(item.retry_wait * 2, _BUSY_RETRY_MAX)

        def requeue() -> None:
            self._waiting_retry -= 1
            self._add(item)

        self._loop.call_later(wait, requeue)
