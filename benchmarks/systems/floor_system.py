"""The floor loop: the least a PostgreSQL queue worker can do with psycopg 3 and asyncio.

It is a floor, not a peer. It has no fairness between channels or groups, no retries, no
leases that expire, no payload table, no results and no hooks: a job is a row, leased by
flipping ``leased``, run as one asyncio task, and deleted once it has returned. What
sqlxmq_py spends above it is the price of its features (and of whatever can still be cut).

The worker keeps the same in-flight limits as sqlxmq_py's ``set_concurrency(min, max)``:
while fewer than ``min`` leased jobs are held it leases up to ``max - held`` with one
statement,

    UPDATE floor_jobs SET leased = true
    WHERE id = ANY(ARRAY(SELECT id FROM floor_jobs WHERE NOT leased
                         ORDER BY id LIMIT n FOR UPDATE SKIP LOCKED))
    RETURNING ...

runs one task per job, and deletes the finished jobs in one ``DELETE ... WHERE id = ANY(%s)``
per batch on a second connection (a job counts as held until its row is deleted, as a leased
job does in sqlxmq_py until its completion is written). A lease that returns fewer rows than
asked means the queue is empty: the loop then waits for a ``NOTIFY`` (sent by the latency
producer's insert) or polls again after a second.

The raw statements of the spawn rows (single-row ``INSERT``, ``INSERT ... unnest``, ``COPY``)
write into the same table.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import traceback
from collections.abc import Mapping
from typing import Any

import psycopg

from .._support import uuid7
from . import OnStart

__all__ = ["COPY", "DELETE", "INSERT_ONE", "INSERT_UNNEST", "LEASE", "SCHEMA", "SYSTEM"]

SCHEMA = """
CREATE TABLE floor_jobs (
    id uuid PRIMARY KEY,
    name text NOT NULL,
    payload json,
    leased boolean NOT NULL DEFAULT false
);
CREATE INDEX floor_jobs_ready_idx ON floor_jobs (id) WHERE NOT leased;
"""

INSERT_ONE = "INSERT INTO floor_jobs (id, name, payload) VALUES (%s, %s, %s)"

INSERT_ONE_NOTIFY = """
WITH job AS (
    INSERT INTO floor_jobs (id, name, payload) VALUES (%s, %s, %s) RETURNING id
)
SELECT pg_notify('floor_jobs', '') FROM job
"""

INSERT_UNNEST = """
INSERT INTO floor_jobs (id, name, payload)
SELECT * FROM unnest(%s::uuid[], %s::text[], %s::json[])
"""

COPY = "COPY floor_jobs (id, name, payload) FROM STDIN"

LEASE = """
UPDATE floor_jobs SET leased = true
WHERE id = ANY(ARRAY(
    SELECT id FROM floor_jobs WHERE NOT leased
    ORDER BY id
    LIMIT %s
    FOR UPDATE SKIP LOCKED
))
RETURNING id, name, payload::text
"""

DELETE = "DELETE FROM floor_jobs WHERE id = ANY(%s)"

FILL_BATCH = 10_000
POLL_INTERVAL = 1.0
DEFAULT_CONCURRENCY = (16, 32)
"""sqlxmq_py's default ``set_concurrency``, used when the options name none."""


class _Producer:
    def __init__(self, dsn: str) -> None:
        self._conn = psycopg.connect(dsn)

    def spawn(self, seq: int) -> None:
        self._conn.execute(INSERT_ONE_NOTIFY, (uuid7(), "probe", json.dumps({"seq": seq})))
        self._conn.commit()

    def close(self) -> None:
        self._conn.close()


def _exit_on_failure(task: asyncio.Task[None]) -> None:
    """A loop that fails ends the worker process (the benchmark then reports its stderr)."""
    if not task.cancelled() and task.exception() is not None:
        traceback.print_exception(task.exception(), file=sys.stderr)
        os._exit(3)


class _Worker:
    """A lease loop, a task per job and a deleter, each loop on its own connection."""

    def __init__(self, dsn: str, options: Mapping[str, Any], on_start: OnStart) -> None:
        self._dsn = dsn
        low, high = options.get("concurrency", DEFAULT_CONCURRENCY)
        self._low: int = low
        self._high: int = high
        self._on_start = on_start
        self._held = 0
        self._finished: list[Any] = []
        self._finished_event = asyncio.Event()
        self._freed = asyncio.Event()
        self._wake = asyncio.Event()
        self._running: set[asyncio.Task[None]] = set()
        self._background: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        connect = psycopg.AsyncConnection.connect
        self._lease_conn = await connect(self._dsn, autocommit=True)
        self._done_conn = await connect(self._dsn, autocommit=True)
        self._listen_conn = await connect(self._dsn, autocommit=True)
        await self._listen_conn.execute("LISTEN floor_jobs")
        for coro in (self._listen(), self._delete_loop(), self._lease_loop()):
            task = asyncio.create_task(coro)
            task.add_done_callback(_exit_on_failure)
            self._background.append(task)

    async def _listen(self) -> None:
        async for _ in self._listen_conn.notifies():
            self._wake.set()

    async def _lease_loop(self) -> None:
        pending = True  # there may be work: nothing is known yet, or the last lease was full
        while True:
            if self._held >= self._low:
                self._freed.clear()
                await self._freed.wait()
                continue
            if not pending:
                try:
                    async with asyncio.timeout(POLL_INTERVAL):
                        await self._wake.wait()
                except TimeoutError:
                    pass
            self._wake.clear()
            want = self._high - self._held
            cur = await self._lease_conn.execute(LEASE, (want,))
            rows = await cur.fetchall()
            self._held += len(rows)
            for job_id, name, payload in rows:
                task = asyncio.create_task(self._run(job_id, name, payload))
                self._running.add(task)
                task.add_done_callback(self._running.discard)
            pending = len(rows) >= want

    async def _run(self, job_id: Any, name: str, payload: str | None) -> None:
        await self._handler(name, payload)
        self._finished.append(job_id)
        self._finished_event.set()

    async def _handler(self, name: str, payload: str | None) -> None:
        """The job itself: a no-op, or a latency probe that reports its start."""
        if name == "probe" and payload is not None:
            self._on_start(json.loads(payload)["seq"])

    async def _delete_loop(self) -> None:
        while True:
            await self._finished_event.wait()
            self._finished_event.clear()
            await self._delete_finished()

    async def _delete_finished(self) -> None:
        while self._finished:
            ids, self._finished = self._finished, []
            await self._done_conn.execute(DELETE, (ids,))
            self._held -= len(ids)
            self._freed.set()

    async def stop(self) -> None:
        lease_loop = self._background[-1]
        lease_loop.cancel()
        await asyncio.gather(lease_loop, return_exceptions=True)
        await asyncio.gather(*self._running, return_exceptions=True)
        for task in self._background[:-1]:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self._delete_finished()
        for conn in (self._lease_conn, self._done_conn, self._listen_conn):
            await conn.close()


class FloorSystem:
    """The floor loop (see the module docstring): a floor to measure against, not a peer."""

    name = "floor"
    pending_sql = "SELECT EXISTS (SELECT 1 FROM floor_jobs)"

    def prepare(self, dsn: str) -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(SCHEMA)

    def fill(self, dsn: str, count: int) -> None:
        with psycopg.connect(dsn) as conn:
            for start in range(0, count, FILL_BATCH):
                size = min(FILL_BATCH, count - start)
                ids = [uuid7() for _ in range(size)]
                conn.execute(INSERT_UNNEST, (ids, ["noop"] * size, [None] * size))
                conn.commit()

    def producer(self, dsn: str) -> _Producer:
        return _Producer(dsn)

    def worker(self, dsn: str, options: Mapping[str, Any], on_start: OnStart) -> _Worker:
        return _Worker(dsn, options, on_start)


SYSTEM = FloorSystem()
