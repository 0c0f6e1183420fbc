"""pgqueuer, through its public API.

The worker uses asyncpg (``AsyncpgDriver``), the driver of pgqueuer's README and benchmarks,
when asyncpg is importable, else psycopg (``PsycopgDriver``, which shares one connection
between queries and LISTEN); the ``driver`` option forces one. Its options are
``PgQueuer.run()``'s ``batch_size`` (jobs per dequeue, and completions per flush of its status
buffer) and ``max_concurrent_tasks`` (a hard cap on the jobs it holds, at least twice the batch
size; unset: unlimited). The event loop is the benchmark's (``loop`` option, as for every
system). Producers and the bulk fill use pgqueuer's synchronous psycopg API.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import psycopg
from pgqueuer import PgQueuer
from pgqueuer.db import PsycopgDriver, SyncPsycopgDriver
from pgqueuer.models import Job
from pgqueuer.queries import Queries, SyncQueries
from psycopg.conninfo import conninfo_to_dict

from . import OnStart

__all__ = ["SYSTEM", "default_driver", "enqueue_one"]

FILL_BATCH = 10_000


def enqueue_one(queries: SyncQueries, payload: bytes) -> None:
    """Enqueues one ``noop`` job: pgqueuer's ``enqueue`` on an autocommit connection."""
    queries.enqueue("noop", payload)


class _Producer:
    def __init__(self, dsn: str) -> None:
        # pgqueuer requires autocommit: each enqueue is its own transaction
        self._conn = psycopg.connect(dsn, autocommit=True)
        self._queries = SyncQueries(SyncPsycopgDriver(self._conn))

    def spawn(self, seq: int) -> None:
        self._queries.enqueue("probe", str(seq).encode())

    def close(self) -> None:
        self._conn.close()


def default_driver() -> str:
    """``asyncpg`` if it is installed, else ``psycopg``."""
    return "asyncpg" if importlib.util.find_spec("asyncpg") is not None else "psycopg"


def _asyncpg_kwargs(dsn: str) -> dict[str, Any]:
    names = {"host": "host", "port": "port", "user": "user", "password": "password"}
    params = conninfo_to_dict(dsn)
    kwargs: dict[str, Any] = {names[k]: v for k, v in params.items() if k in names}
    kwargs["database"] = params.get("dbname")
    if "port" in kwargs:
        kwargs["port"] = int(kwargs["port"])
    return kwargs


class _Worker:
    def __init__(self, dsn: str, options: Mapping[str, Any], on_start: OnStart) -> None:
        self._dsn = dsn
        self._batch_size: int = options.get("batch_size", 10)
        self._max_concurrent_tasks: int | None = options.get("max_concurrent_tasks")
        self._driver: str = options.get("driver") or default_driver()
        self._on_start = on_start
        self._task: asyncio.Task[None] | None = None
        self._close: Callable[[], Awaitable[None]] | None = None

    async def _connect(self) -> PgQueuer:
        if self._driver == "asyncpg":
            import asyncpg  # type: ignore[import-not-found,import-untyped,unused-ignore]

            connection = await asyncpg.connect(**_asyncpg_kwargs(self._dsn))
            self._close = connection.close
            return PgQueuer.from_asyncpg_connection(connection)
        conn = await psycopg.AsyncConnection.connect(self._dsn, autocommit=True)
        self._close = conn.close
        return PgQueuer.from_psycopg_connection(conn)

    async def start(self) -> None:
        self._pgq = await self._connect()
        on_start = self._on_start

        @self._pgq.entrypoint("noop")
        async def noop(job: Job) -> None:
            pass

        @self._pgq.entrypoint("probe")
        async def probe(job: Job) -> None:
            assert job.payload is not None
            on_start(int(job.payload))

        self._task = asyncio.create_task(
            self._pgq.run(
                batch_size=self._batch_size, max_concurrent_tasks=self._max_concurrent_tasks
            )
        )

    async def stop(self) -> None:
        self._pgq.shutdown.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._close is not None:
            await self._close()


class PgqueuerSystem:
    """pgqueuer: ``Queries.install()``, ``enqueue()``, ``PgQueuer.run()``."""

    name = "pgqueuer"
    pending_sql = "SELECT EXISTS (SELECT 1 FROM pgqueuer)"

    def prepare(self, dsn: str) -> None:
        asyncio.run(self._install(dsn))

    async def _install(self, dsn: str) -> None:
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            await Queries(PsycopgDriver(conn)).install()

    def fill(self, dsn: str, count: int) -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            queries = SyncQueries(SyncPsycopgDriver(conn))
            for start in range(0, count, FILL_BATCH):
                size = min(FILL_BATCH, count - start)
                queries.enqueue(["noop"] * size, [None] * size, [0] * size)

    def producer(self, dsn: str) -> _Producer:
        return _Producer(dsn)

    def worker(self, dsn: str, options: Mapping[str, Any], on_start: OnStart) -> _Worker:
        return _Worker(dsn, options, on_start)


SYSTEM = PgqueuerSystem()
