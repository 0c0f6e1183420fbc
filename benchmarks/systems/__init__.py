"""The queues under test, each behind the same small interface.

A system prepares a fresh database, fills it with no-op jobs, spawns single jobs from a
producer (one job per transaction) and runs a worker. Workers run in ``benchmarks.worker``
subprocesses; everything else runs in the benchmark's own process. Each system lives in its
own module, imported only when needed, so that a worker process loads nothing but its own
queue library (which matters for the memory row).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any, Protocol

__all__ = ["SYSTEMS", "OnStart", "Producer", "System", "Worker", "load"]

OnStart = Callable[[int], None]
"""Called by a latency probe job with its sequence number when it starts."""

SYSTEMS = {
    "sqlxmq": "benchmarks.systems.sqlxmq_system",
    "floor": "benchmarks.systems.floor_system",
    "pgqueuer": "benchmarks.systems.pgqueuer_system",
    "procrastinate": "benchmarks.systems.procrastinate_system",
}


class Producer(Protocol):
    """Spawns latency probes, one job per transaction."""

    def spawn(self, seq: int) -> None:
        """Spawns probe ``seq`` and returns once its transaction has committed."""
        ...

    def close(self) -> None:
        """Closes the producer's connection."""
        ...


class Worker(Protocol):
    """A queue worker running inside a ``benchmarks.worker`` process."""

    async def start(self) -> None:
        """Connects and starts working (returns once it runs in the background)."""
        ...

    async def stop(self) -> None:
        """Stops gracefully."""
        ...


class System(Protocol):
    """One queue implementation."""

    name: str
    pending_sql: str
    """A statement returning one boolean: true while some job is not finished."""

    def prepare(self, dsn: str) -> None:
        """Creates the queue's schema in a fresh database."""
        ...

    def fill(self, dsn: str, count: int) -> None:
        """Enqueues ``count`` no-op jobs in bulk (not timed)."""
        ...

    def producer(self, dsn: str) -> Producer:
        """A producer of latency probes."""
        ...

    def worker(self, dsn: str, options: Mapping[str, Any], on_start: OnStart) -> Worker:
        """A worker that runs no-op jobs and latency probes (calling ``on_start``)."""
        ...


def load(name: str) -> System:
    """The system called ``name`` (its module is imported now)."""
    module = importlib.import_module(SYSTEMS[name])
    system: System = module.SYSTEM
    return system
