"""sqlxmq_py, through its public API."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg

from sqlxmq_py import CurrentJob, JobRegistry, JobRunnerHandle, job, migrate, spawn_many

from . import OnStart

__all__ = ["SYSTEM", "ProbeLog", "noop", "probe"]

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
        self._low, self._high = options.get("concurrency", (100, 200))
        self._log = ProbeLog(on_start)
        self._handle: JobRunnerHandle | None = None

    async def start(self) -> None:
        registry = JobRegistry([noop, probe]).set_context(self._log)
        options = registry.runner(self._dsn).set_concurrency(self._low, self._high)
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
