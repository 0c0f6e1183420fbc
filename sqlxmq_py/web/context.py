"""What every route of the web app shares: its settings and its connection pool."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from psycopg_pool import AsyncConnectionPool

from .._pooler import prepare_unless_pooled
from .replica import READING
from .security import Sessions

__all__ = ["BASE_KEY", "RESULT_WAITERS", "PoolHolder", "WebContext", "base_path"]

BASE_KEY = "sqlxmq.base"
"""Scope key of the prefix the app is served under, recorded before any ``Mount`` extends
``root_path``."""


def base_path(scope: Mapping[str, Any]) -> str:
    """The prefix the app is served under ("" at the root; "/admin/queue" when mounted there)."""
    return str(scope.get(BASE_KEY, scope.get("root_path", ""))).rstrip("/")


POOL_MAX_SIZE = 10
RESULT_WAITERS = 4
"""At most this many ``/result`` requests hold a pooled connection while they wait; others wait
for a turn within their timeout, so waiting clients can never starve the dashboard."""


class PoolHolder:
    """The app's ``AsyncConnectionPool``: opened by the app's lifespan, or, when the app is
    mounted in an application that does not run sub-application lifespans, by the first request.
    """

    def __init__(self, conninfo: str, read_conninfo: str | None = None) -> None:
        """``read_conninfo``: a second server (a replica) for requests that only read."""
        self._conninfo = conninfo
        self.reads: PoolHolder | None = None if read_conninfo is None else PoolHolder(read_conninfo)
        """The holder of the read pool, if there is one."""
        self.timeout = 10.0
        """Seconds a request waits for a connection before answering 503."""
        self._pool: AsyncConnectionPool[Any] | None = None
        self._waiters: asyncio.Semaphore | None = None
        self._lock: asyncio.Lock | None = None

    async def open(self) -> AsyncConnectionPool[Any]:
        """Opens the pool (without waiting for the database, so the app starts while the
        database is down; requests then answer 503). While a read is handled (``GET``), the
        read pool when there is one."""
        if self.reads is not None and READING.get():
            return await self.reads.open()
        if self._pool is not None:
            return self._pool
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._pool is None:
                pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
                    self._conninfo,
                    min_size=1,
                    max_size=POOL_MAX_SIZE,
                    timeout=self.timeout,
                    open=False,
                    name="sqlxmq-web",
                    configure=prepare_unless_pooled,
                    check=AsyncConnectionPool.check_connection,
                )
                await pool.open(wait=False)
                self._waiters = asyncio.Semaphore(RESULT_WAITERS)
                self._pool = pool
        return self._pool

    @property
    def waiters(self) -> asyncio.Semaphore:
        """Turns for requests that wait for a job's result (see ``RESULT_WAITERS``)."""
        if self._waiters is None:
            self._waiters = asyncio.Semaphore(RESULT_WAITERS)
        return self._waiters

    async def close(self) -> None:
        """Closes the pool; the next request opens a new one."""
        pool, self._pool = self._pool, None
        self._lock = None
        if pool is not None:
            await pool.close()
        if self.reads is not None:
            await self.reads.close()


@dataclass(kw_only=True)
class WebContext:
    """Settings and resources of one app made by ``create_app``."""

    conninfo: str
    token: str | None
    title: str
    pools: PoolHolder
    sessions: Sessions | None = field(default=None)
