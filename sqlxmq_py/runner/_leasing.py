"""Taking jobs for one runner: scheduled jobs made ready, leases in one statement, channels
with a concurrency limit, and the runner's idle announcement that decides whether spawns wake it.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any

import psycopg

from .._connections import Rows
from ..sql import query
from ._connection import DedicatedConnection

__all__ = ["PROMOTE_BATCH", "Leaser"]

PROMOTE_BATCH = 5000
"""Scheduled jobs made ready per statement (the statement's LIMIT)."""


class Leaser:
    """Leases jobs on the runner's lease connection and remembers its fairness cursors."""

    def __init__(
        self,
        conn: DedicatedConnection,
        *,
        runner_id: uuid.UUID,
        channel_names: Sequence[str] | None,
        default_lease: timedelta,
        durable: bool,
    ) -> None:
        """Leases for a runner subscribed to ``channel_names`` (None: every channel); with
        ``durable``, each lease waits for the database's disk flush."""
        self._conn = conn
        self._runner_id = runner_id
        self._channel_names = None if channel_names is None else list(channel_names)
        self._default_lease = default_lease
        self._durable = durable
        self._cursor: tuple[str, str] | None = None
        self._limited_cursors: dict[str, tuple[str, str]] = {}
        self.limits: dict[str, int] = {}
        """Channel limits that concern this runner: channel -> most jobs running at once."""
        self.idle: bool | None = None
        """Whether the runner is announced idle (spawns notify it); None before the first."""

    async def promote(self) -> tuple[int, float | None]:
        """Makes due scheduled jobs ready; returns how many, and the seconds until the next
        scheduled job of this runner's channels (None if there is none)."""
        ((promoted, wait),) = await self._conn.execute(
            query("promote_scheduled"), {"channel_names": self._channel_names}
        )
        return int(promoted), wait

    def _params(
        self,
        names: list[str] | None,
        cursor: tuple[str, str] | None,
        limit: int,
        excluded: list[str],
    ) -> dict[str, object]:
        cursor_name, cursor_args = cursor or (None, None)
        return {
            "channel_names": names,
            "cursor_name": cursor_name,
            "cursor_args": cursor_args,
            "limit": limit,
            "default_lease": self._default_lease,
            "excluded": excluded,
            "durable": self._durable,
        }

    async def lease(self, want: int, start: Callable[[Rows], Awaitable[None]]) -> int:
        """Leases up to ``want`` jobs and returns how many. ``start`` receives each statement's
        rows at once, before anything else can fail: a leased job that is not started loses
        its attempt until the lease expires."""
        limited = sorted(self.limits)
        rows = await self._conn.execute(
            query("lease"), self._params(self._channel_names, self._cursor, want, limited)
        )
        if rows:
            self._cursor = (rows[-1][4], rows[-1][5])
        await start(rows)
        leased = len(rows)
        for channel in limited:
            if leased < want:
                more = await self._lease_limited(channel, want - leased)
                await start(more)
                leased += len(more)
        return leased

    async def _lease_limited(self, channel: str, want: int) -> Rows:
        """Leases from a channel with a concurrency limit: the limit's row lock serialises the
        runners, and the running jobs are counted after it is taken (a fresh snapshot)."""
        params = self._params([channel], self._limited_cursors.get(channel), want, [])

        async def lease(conn: psycopg.AsyncConnection[tuple[Any, ...]]) -> Rows:
            async with conn.transaction():
                cur = await conn.execute(query("lock_channel_limit"), {"channel_name": channel})
                limit = await cur.fetchone()
                if limit is None:
                    return []
                cur = await conn.execute(query("count_running"), {"channel_name": channel})
                running = await cur.fetchone()
                budget = min(want, limit[0] - (running[0] if running else 0))
                if budget <= 0:
                    return []
                cur = await conn.execute(query("lease"), {**params, "limit": budget})
                return await cur.fetchall()

        rows = await self._conn.run(lease)
        if rows:
            self._limited_cursors[channel] = (rows[-1][4], rows[-1][5])
        return rows

    async def refresh_limits(self) -> None:
        """Reads the channel limits that concern this runner."""
        rows = await self._conn.execute(query("channel_limits"))
        names = self._channel_names
        self.limits = {c: n for c, n in rows if names is None or c in names}

    async def set_idle(self, idle: bool) -> None:
        """Announces the runner idle (spawns notify it) or busy; also its heartbeat."""
        await self._conn.execute(
            query("listener_upsert"),
            {
                "id": self._runner_id,
                "channel_names": self._channel_names,
                "idle": idle,
                "host": socket.gethostname(),
                "pid": os.getpid(),
            },
        )
        self.idle = idle

    async def unregister(self) -> None:
        """Removes the runner's announcement."""
        await self._conn.execute(query("listener_delete"), {"id": self._runner_id})
