"""Taking jobs for one runner: leases in one statement (channels with a concurrency limit each
in their own, paused channels in none), scheduled jobs made ready, and the runner's idle
announcement that decides whether spawns wake it."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Sequence
from datetime import timedelta

from .._connections import Rows
from .._version import __version__
from ..sql import query
from ._connection import DedicatedConnection

__all__ = ["PROMOTE_BATCH", "Leaser", "caps_loosened", "channel_caps", "split_deferred"]

PROMOTE_BATCH = 5000
"""Scheduled jobs made ready per statement (mq_promote's LIMIT)."""


def channel_caps(rows: Rows, channel_names: Sequence[str] | None) -> dict[str, int]:
    """The most jobs of each channel of ``channel_names`` (None: all) that may run at once,
    from the rows of ``channel_limits`` (channel, limit or None, paused): 0 when paused;
    channels without a limit or a pause are not listed."""
    caps: dict[str, int] = {}
    for channel, limit, paused in rows:
        if channel_names is not None and channel not in channel_names:
            continue
        if paused:
            caps[channel] = 0
        elif limit is not None:
            caps[channel] = limit
    return caps


def caps_loosened(old: dict[str, int], new: dict[str, int]) -> bool:
    """Whether some channel may run more jobs under ``new`` caps than under ``old`` (resumed,
    its limit raised or removed): jobs the runner left alone may be leased now."""
    return any(channel not in new or new[channel] > cap for channel, cap in old.items())


def split_deferred(rows: Rows) -> tuple[Rows, int]:
    """The rows of a lease that are leased, and how many it deferred for their rate keys (rows
    without a lease token, which mq_lease returns after the leased ones)."""
    leased = [row for row in rows if row[1] is not None]
    return leased, len(rows) - len(leased)


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
        concurrency: tuple[int, int],
    ) -> None:
        """Leases for a runner subscribed to ``channel_names`` (None: every channel); with
        ``durable``, each lease waits for the database's disk flush. ``concurrency`` (min,
        max) is announced with the runner."""
        self._conn = conn
        self._runner_id = runner_id
        self._concurrency = concurrency
        self._channel_names = None if channel_names is None else list(channel_names)
        self._default_lease = default_lease
        self._durable = durable
        self._cursor: tuple[str, str] | None = None
        self._limited_cursors: dict[str, tuple[str, str]] = {}
        self.limits: dict[str, int] = {}
        """Channel limits that concern this runner: channel -> most jobs running at once (0
        for a paused channel)."""
        self.idle: bool | None = None
        """Whether the runner is announced idle (spawns notify it); None before the first."""

    async def promote(self) -> tuple[int | None, float | None]:
        """Makes due scheduled jobs ready unless another runner is doing it; returns how many
        (None: another runner was), and the seconds until the next scheduled job of this
        runner's channels (None if there is none)."""
        ((promoted, wait),) = await self._conn.execute(
            query("promote"), {"channel_names": self._channel_names, "exclusive": True}
        )
        return promoted, wait

    async def lease(self, want: int, max_bytes: int) -> tuple[Rows, int]:
        """Leases up to ``want`` jobs holding at most about ``max_bytes`` of payload (the first
        job whatever its size), from the unlimited channels first; none from a channel whose
        limit is 0 (or that is paused). Returns the leased rows and how many jobs the lease
        deferred instead, their rate keys being exhausted (they count as looked at: a lease
        that deferred some may find more at once)."""
        limited = sorted(self.limits)
        cursor_name, cursor_args = self._cursor or (None, None)
        rows, deferred = split_deferred(
            await self._conn.execute(
                query("runner_lease"),
                {
                    "channel_names": self._channel_names,
                    "cursor_name": cursor_name,
                    "cursor_args": cursor_args,
                    "limit": want,
                    "default_lease": self._default_lease,
                    "excluded": limited,
                    "durable": self._durable,
                    "max_bytes": max_bytes,
                    "runner": self._runner_id,
                },
            )
        )
        if rows:
            self._cursor = (rows[-1][4], rows[-1][5])
        for channel in limited:
            if not self.limits[channel]:
                continue
            taken = len(rows) + deferred
            used = sum(row[14] for row in rows)
            if taken >= want or used >= max_bytes:
                break
            more, more_deferred = split_deferred(
                await self._lease_limited(channel, want - taken, max_bytes - used)
            )
            rows += more
            deferred += more_deferred
        return rows, deferred

    async def _lease_limited(self, channel: str, want: int, max_bytes: int) -> Rows:
        cursor_name, cursor_args = self._limited_cursors.get(channel, (None, None))
        rows = await self._conn.execute(
            query("lease_limited"),
            {
                "channel_name": channel,
                "cursor_name": cursor_name,
                "cursor_args": cursor_args,
                "limit": want,
                "default_lease": self._default_lease,
                "durable": self._durable,
                "max_bytes": max_bytes,
                "runner": self._runner_id,
            },
        )
        leased = [row for row in rows if row[1] is not None]
        if leased:
            self._limited_cursors[channel] = (leased[-1][4], leased[-1][5])
        return rows

    async def refresh_limits(self) -> bool:
        """Reads the channel limits and pauses that concern this runner; returns whether some
        channel may run more jobs than before (see :func:`caps_loosened`)."""
        rows = await self._conn.execute(query("channel_limits"), writes=False)
        old, self.limits = self.limits, channel_caps(rows, self._channel_names)
        return caps_loosened(old, self.limits)

    async def set_idle(self, idle: bool) -> None:
        """Announces the runner idle (spawns notify it) or busy; also its heartbeat, and what
        ``sqlxmq workers`` lists about it."""
        await self._conn.execute(
            query("listener_upsert"),
            {
                "id": self._runner_id,
                "channel_names": self._channel_names,
                "idle": idle,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "version": __version__,
                "min_concurrency": self._concurrency[0],
                "max_concurrency": self._concurrency[1],
            },
        )
        self.idle = idle

    async def unregister(self) -> None:
        """Removes the runner's announcement."""
        await self._conn.execute(query("listener_delete"), {"id": self._runner_id})
