"""procrastinate, through its public API, on its psycopg connector.

Completed jobs are deleted (``delete_jobs="always"``), as sqlxmq_py does; the worker listens
for notifications (its default) and runs ``concurrency`` jobs at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

import procrastinate

from . import OnStart

__all__ = ["SYSTEM"]

FILL_BATCH = 10_000


def _app(dsn: str, on_start: OnStart | None = None, pool_size: int = 4) -> procrastinate.App:
    app = procrastinate.App(
        connector=procrastinate.PsycopgConnector(conninfo=dsn, min_size=1, max_size=pool_size)
    )

    @app.task(name="noop")
    async def noop() -> None:
        pass

    @app.task(name="probe")
    async def probe(seq: int) -> None:
        if on_start is not None:
            on_start(seq)

    return app


class _Producer:
    def __init__(self, dsn: str) -> None:
        self._app = _app(dsn, pool_size=1).open()
        self._probe = self._app.tasks["probe"]

    def spawn(self, seq: int) -> None:
        self._probe.defer(seq=seq)

    def close(self) -> None:
        self._app.close()


class _Worker:
    def __init__(self, dsn: str, options: Mapping[str, Any], on_start: OnStart) -> None:
        self._concurrency: int = options.get("concurrency", 10)
        self._app = _app(dsn, on_start, pool_size=options.get("pool_size", 4))
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._app.open_async()
        self._task = asyncio.create_task(
            self._app.run_worker_async(
                concurrency=self._concurrency,
                wait=True,
                delete_jobs="always",
                install_signal_handlers=False,
            )
        )

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._app.close_async()


class ProcrastinateSystem:
    """procrastinate: ``apply_schema()``, ``batch_defer()``, ``defer()``, ``run_worker_async``."""

    name = "procrastinate"
    pending_sql = (
        "SELECT EXISTS (SELECT 1 FROM procrastinate_jobs WHERE status IN ('todo', 'doing'))"
    )

    def prepare(self, dsn: str) -> None:
        with _app(dsn, pool_size=1).open() as app:
            app.schema_manager.apply_schema()

    def fill(self, dsn: str, count: int) -> None:
        with _app(dsn, pool_size=1).open() as app:
            noop = app.tasks["noop"]
            for start in range(0, count, FILL_BATCH):
                noop.batch_defer(*({} for _ in range(min(FILL_BATCH, count - start))))

    def producer(self, dsn: str) -> _Producer:
        return _Producer(dsn)

    def worker(self, dsn: str, options: Mapping[str, Any], on_start: OnStart) -> _Worker:
        return _Worker(dsn, options, on_start)


SYSTEM = ProcrastinateSystem()
