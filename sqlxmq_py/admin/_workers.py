"""The live runners (workers): who they are, what they run, and whether they still beat."""

from __future__ import annotations

from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import starmap
from typing import Any, NamedTuple, overload
from uuid import UUID

from .. import _connections
from .._connections import AnyConnection, AsyncConnectionLike, Rows, SyncConnectionLike
from ..sql import query

__all__ = ["STALE_AFTER", "WorkerInfo", "list_workers"]

STALE_AFTER = timedelta(seconds=30)
"""A runner whose heartbeat is older than this is listed as stale: three of the runner's
heartbeats (every 10 s) missed. Maintenance deletes its row after 5 minutes."""


@dataclass(frozen=True, kw_only=True)
class WorkerInfo:
    """A runner that announced itself in the database.

    ``channel_names`` is None for a runner of every channel; ``running`` counts the jobs it
    holds a lease on now; ``stale`` says its heartbeat is older than ``STALE_AFTER`` (it
    stopped without saying so, or cannot reach the database); ``now`` is the database's clock,
    for ages."""

    id: UUID
    host: str | None
    pid: int | None
    version: str | None
    channel_names: list[str] | None
    min_concurrency: int | None
    max_concurrency: int | None
    idle: bool
    started_at: datetime
    heartbeat_at: datetime
    running: int
    stale: bool
    now: datetime

    @property
    def uptime(self) -> timedelta:
        """How long the runner has been running, by the database's clock."""
        return self.now - self.started_at

    @property
    def heartbeat_age(self) -> timedelta:
        """How long ago its last heartbeat was, by the database's clock."""
        return self.now - self.heartbeat_at


class WorkerRow(NamedTuple):
    """A row of the ``workers`` statement."""

    id: UUID
    host: str | None
    pid: int | None
    version: str | None
    channel_names: list[str] | None
    min_concurrency: int | None
    max_concurrency: int | None
    idle: bool
    started_at: datetime
    heartbeat_at: datetime
    running: int
    stale: bool
    now: datetime


def _workers(rows: Rows) -> list[WorkerInfo]:
    return [WorkerInfo(**r._asdict()) for r in starmap(WorkerRow, rows)]


@overload
def list_workers(
    conn: SyncConnectionLike, *, stale_after: timedelta = STALE_AFTER
) -> list[WorkerInfo]: ...


@overload
def list_workers(
    conn: AsyncConnectionLike, *, stale_after: timedelta = STALE_AFTER
) -> Coroutine[Any, Any, list[WorkerInfo]]: ...


def list_workers(
    conn: AnyConnection, *, stale_after: timedelta = STALE_AFTER
) -> list[WorkerInfo] | Coroutine[Any, Any, list[WorkerInfo]]:
    """The runners announced in the database, by host and pid, each with the number of jobs
    it runs now.

    Args:
        conn: a sync or async connection or pool.
        stale_after: a runner whose last heartbeat is older is flagged ``stale``.

    Returns:
        A list of ``WorkerInfo`` (an awaitable of it for an async connection).
    """
    return _connections.run(conn, query("workers"), {"stale": stale_after}, _workers)
