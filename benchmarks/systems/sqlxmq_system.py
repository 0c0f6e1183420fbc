"""sqlxmq_py, through its public API.

Besides the system, this module holds the library calls that the spawn rows time, so that a
faster documented way replaces them here alone:

- :func:`enqueue_one`: "enqueue one job, nothing else", the library's documented fastest way
  (today ``builder().spawn()`` on an autocommit connection, one statement, its own transaction);
- :func:`bulk_spawn_typed`: many payloads of one job without a builder per job
  (``spawn_payloads``), one ``noop`` job per number of ``numbers`` with the payload
  ``{"n": number}`` in the caller's transaction; the bulk scenario measures it against ``COPY``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg

from sqlxmq_py import CurrentJob, JobRegistry, JobRunnerHandle, job, migrate, spawn_many
from sqlxmq_py.spawn import spawn_payloads

from . import OnStart

__all__ = ["SYSTEM", "ProbeLog", "bulk_spawn_typed", "enqueue_one", "noop", "probe"]

FILL_BATCH = 10_000


@job
async def noop(current_job: CurrentJob) -> None:
    """Does nothing: the queue's own cost is all that is measured."""


@dataclass(frozen=True)
class ProbeLog:
    """Context value of the probe job: where it reports its start."""

    on_start: OnStart


@job
async def probe(current_job: CurrentJob, log: ProbeLog) -> None:
    """A latency probe: reports its sequence number as soon as it starts."""
    log.on_start(current_job.json()["seq"])


def enqueue_one(conn: psycopg.Connection[Any], payload: Any) -> None:
    """Enqueues one ``noop`` job with ``payload`` on an autocommit connection (the spawn is its
    own transaction): the documented way to enqueue one job and nothing else."""
    noop.builder().set_json(payload).spawn(conn)


def bulk_spawn_typed(conn: psycopg.Connection[Any], numbers: range) -> None:
    """Spawns one ``noop`` job per number, payload ``{"n": number}``, in the caller's
    transaction, with the library's builder-free bulk call."""
    spawn_payloads(conn, noop, ({"n": n} for n in numbers))


class _Producer:
    def __init__(self, dsn: str) -> None:
        self._conn = psycopg.connect(dsn)

    def spawn(self, seq: int) -> None:
        probe.builder().set_json({"seq": seq}).spawn(self._conn)
        self._conn.commit()

    def close(self) -> None:
        self._conn.close()


class _Worker:
    def __init__(self, dsn: str, options: Mapping[str, Any], on_start: OnStart) -> None:
        self._dsn = dsn
        self._concurrency: tuple[int, int] | None = options.get("concurrency")
        self._log = ProbeLog(on_start)
        self._handle: JobRunnerHandle | None = None

    async def start(self) -> None:
        registry = JobRegistry([noop, probe]).set_context(self._log)
        options = registry.runner(self._dsn)
        if self._concurrency is not None:  # else the library's default
            options.set_concurrency(*self._concurrency)
        self._handle = await options.run()

    async def stop(self) -> None:
        if self._handle is not None:
            await self._handle.stop()


class SqlxmqSystem:
    """sqlxmq_py: ``migrate()``, ``spawn_many()``, ``spawn()`` + commit, ``JobRegistry.runner``."""

    name = "sqlxmq"
    pending_sql = "SELECT EXISTS (SELECT 1 FROM mq_jobs)"

    def prepare(self, dsn: str) -> None:
        with psycopg.connect(dsn) as conn:
            migrate(conn)
            conn.commit()

    def fill(self, dsn: str, count: int) -> None:
        with psycopg.connect(dsn) as conn:
            for start in range(0, count, FILL_BATCH):
                size = min(FILL_BATCH, count - start)
                spawn_many(conn, [noop.builder() for _ in range(size)])
                conn.commit()

    def producer(self, dsn: str) -> _Producer:
        return _Producer(dsn)

    def worker(self, dsn: str, options: Mapping[str, Any], on_start: OnStart) -> _Worker:
        return _Worker(dsn, options, on_start)


SYSTEM = SqlxmqSystem()
