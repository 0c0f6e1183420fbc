"""The plain-psycopg baseline: a minimal queue with no features, to measure what the
database and the driver cost on their own.

One table; a job is leased by flipping ``leased`` with ``UPDATE ... FOR UPDATE SKIP LOCKED ...
RETURNING`` (100 at a time), run as its own asyncio task, and deleted by id array once it has
returned. The worker listens for a ``NOTIFY`` sent with each single insert, and otherwise
polls once a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import traceback
from collections.abc import Mapping
from typing import Any

import psycopg

from .._support import uuid7
from . import OnStart

__all__ = [
    "DELETE",
    "INSERT_ONE",
    "INSERT_UNNEST",
    "LEASE",
    "SCHEMA",
    "SYSTEM",
]

SCHEMA = """
CREATE TABLE baseline_jobs (
    id uuid PRIMARY KEY,
    name text NOT NULL,
    payload json,
    leased boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX baseline_jobs_ready_idx ON baseline_jobs (created_at) WHERE NOT leased;
"""

INSERT_ONE = "INSERT INTO baseline_jobs (id, name, payload) VALUES (%s, %s, %s)"

INSERT_ONE_NOTIFY = """
WITH job AS (
    INSERT INTO baseline_jobs (id, name, payload) VALUES (%s, %s, %s) RETURNING id
)
SELECT pg_notify('baseline_jobs', '') FROM job
"""

INSERT_UNNEST = """
INSERT INTO baseline_jobs (id, name, payload)
SELECT * FROM unnest(%s::uuid[], %s::text[], %s::json[])
"""

COPY = "COPY baseline_jobs (id, name, payload) FROM STDIN"

LEASE = """
UPDATE baseline_jobs SET leased = true
WHERE id IN (
    SELECT id FROM baseline_jobs WHERE NOT leased
    ORDER BY created_at
    LIMIT %s
    FOR UPDATE SKIP LOCKED
)
RETURNING id, name, payload::text
"""

DELETE = "DELETE FROM baseline_jobs WHERE id = ANY(%s)"

FILL_BATCH = 10_000
POLL_INTERVAL = 1.0


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
    """Lease loop, one task per job, and a deleter, each on its own connection."""

    def __init__(self, dsn: str, options: Mapping[str, Any], on_start: OnStart) -> None:
        self._dsn = dsn
        self._batch: int = options.get("batch", 100)
        self._max_held: int = options.get("max_held", 2 * self._batch)
        self._on_start = on_start
        self._held = 0
        self._finished: list[Any] = []
        self._finished_event = asyncio.Event()
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._running: set[asyncio.Task[None]] = set()
        self._background: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        connect = psycopg.AsyncConnection.connect
        self._lease_conn = await connect(self._dsn, autocommit=True)
        self._done_conn = await connect(self._dsn, autocommit=True)
        self._listen_conn = await connect(self._dsn, autocommit=True)
        await self._listen_conn.execute("LISTEN baseline_jobs")
        for coro in (self._listen(), self._delete_loop(), self._lease_loop()):
            task = asyncio.create_task(coro)
            task.add_done_callback(_exit_on_failure)
            self._background.append(task)

    async def _listen(self) -> None:
        async for _ in self._listen_conn.notifies():
            self._wake.set()

    async def _lease_loop(self) -> None:
        while True:
            if self._held + self._batch > self._max_held:
                self._room.clear()
                await self._room.wait()
                continue
            self._wake.clear()
            cur = await self._lease_conn.execute(LEASE, (self._batch,))
            rows = await cur.fetchall()
            self._held += len(rows)
            for job_id, name, payload in rows:
                task = asyncio.create_task(self._run(job_id, name, payload))
                self._running.add(task)
                task.add_done_callback(self._running.discard)
            if len(rows) < self._batch:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), POLL_INTERVAL)

    async def _run(self, job_id: Any, name: str, payload: str | None) -> None:
        await self._job(name, payload)
        self._finished.append(job_id)
        self._finished_event.set()

    async def _job(self, name: str, payload: str | None) -> None:
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
            if self._held + self._batch <= self._max_held:
                self._room.set()

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


class BaselineSystem:
    """The plain-psycopg baseline queue."""

    name = "baseline"
    pending_sql = "SELECT EXISTS (SELECT 1 FROM baseline_jobs)"

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


SYSTEM = BaselineSystem()
