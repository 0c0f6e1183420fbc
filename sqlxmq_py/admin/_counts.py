"""Counting jobs: per channel and state (exact or estimated), per minute, and blocked ordered
chains."""

from __future__ import annotations

import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import datetime
from itertools import starmap
from typing import Any, NamedTuple, overload

from .. import _connections
from .._connections import AnyConnection, AsyncConnectionLike, Rows, SyncConnectionLike
from .._validate import check_text
from ..errors import ConfigurationError
from ..sql import query
from ..states import LABELS, JobState

__all__ = [
    "ESTIMATE_ABOVE",
    "ESTIMATE_RUNNING_ABOVE",
    "ESTIMATE_SAMPLE_ROWS",
    "BlockedChain",
    "QueueCount",
    "StatsBucket",
    "blocked_chains",
    "queue_counts",
    "throughput",
]


@dataclass(frozen=True, kw_only=True)
class QueueCount:
    """How many jobs of a channel are in a state; for ready jobs, the oldest one's age."""

    channel_name: str
    state: JobState
    count: int
    oldest_ready_age_s: float | None
    exact: bool = True
    """False when ``count`` (and ``oldest_ready_age_s``) are estimates: see
    :func:`queue_counts` with ``exact=False``."""


ESTIMATE_ABOVE = 1000
"""``queue_counts(exact=False)`` counts up to this many jobs per channel and state exactly, and
estimates larger counts."""
ESTIMATE_RUNNING_ABOVE = 10_000
"""... and up to this many running jobs in all."""
ESTIMATE_SAMPLE_ROWS = 30_000
"""Rows of ``mq_jobs`` sampled (``TABLESAMPLE SYSTEM``) for the estimates."""


class _CountRow(NamedTuple):
    """A row of ``queue_counts`` and ``queue_counts_estimated``: jobs of a channel under one
    admin index label (a state code, ``t`` for retrying)."""

    channel_name: str
    label: str
    jobs: int
    exact: bool
    oldest_ready_age_s: float | None


def _counts(rows: Rows) -> list[QueueCount]:
    """The rows by state: the labels that make up one state (blocked ordered jobs,
    continuations and parked jobs are all waiting) added up, as ``states.LABELS`` says."""
    merged: dict[tuple[str, JobState], QueueCount] = {}
    for r in starmap(_CountRow, rows):
        state = LABELS[r.label]
        count, exact, age = r.jobs, r.exact, r.oldest_ready_age_s
        before = merged.get((r.channel_name, state))
        if before is not None:
            count += before.count
            exact = exact and before.exact
            age = before.oldest_ready_age_s if age is None else age
        merged[r.channel_name, state] = QueueCount(
            channel_name=r.channel_name,
            state=state,
            count=count,
            oldest_ready_age_s=age,
            exact=exact,
        )
    return [merged[key] for key in sorted(merged)]


@overload
def queue_counts(conn: SyncConnectionLike, *, exact: bool = True) -> list[QueueCount]: ...


@overload
def queue_counts(
    conn: AsyncConnectionLike, *, exact: bool = True
) -> Coroutine[Any, Any, list[QueueCount]]: ...


def queue_counts(
    conn: AnyConnection, *, exact: bool = True
) -> list[QueueCount] | Coroutine[Any, Any, list[QueueCount]]:
    """Jobs per channel and state, with the age of each channel's oldest ready job.

    ``exact=True`` counts every job: a scan of the whole queue (about 0.1 s per million jobs).
    ``exact=False`` takes a few milliseconds however long the queue is: each channel's count
    of a state is exact up to :data:`ESTIMATE_ABOVE` jobs (:data:`ESTIMATE_RUNNING_ABOVE` for
    running jobs, all channels together), and above that an estimate from a sample of the
    table, with ``exact=False`` on that count. The oldest ready age of a channel with more
    ready jobs than that is also an estimate: read from its oldest jobs by id, it misses a job
    spawned later with an earlier ``run_at``.
    """
    if not exact:
        params = {
            "cap": ESTIMATE_ABOVE,
            "running_cap": ESTIMATE_RUNNING_ABOVE,
            "sample_rows": ESTIMATE_SAMPLE_ROWS,
        }
        return _connections.run(
            conn, query("queue_counts_estimated"), params, _counts, prepare=False
        )
    return _connections.run(conn, query("queue_counts"), None, _counts)


@dataclass(frozen=True, kw_only=True)
class BlockedChain:
    """An ordered chain stopped by its failed head."""

    channel_name: str
    channel_args: str
    head_id: uuid.UUID
    head_name: str
    error: str | None
    waiting: int
    """Jobs queued behind the head."""


class _ChainRow(NamedTuple):
    """A row of ``blocked_chains``: a ``BlockedChain``'s fields, in order."""

    channel_name: str
    channel_args: str
    head_id: uuid.UUID
    head_name: str
    error: str | None
    waiting: int


def _chains(rows: Rows) -> list[BlockedChain]:
    return [BlockedChain(**_ChainRow(*row)._asdict()) for row in rows]


@overload
def blocked_chains(conn: SyncConnectionLike) -> list[BlockedChain]: ...


@overload
def blocked_chains(conn: AsyncConnectionLike) -> Coroutine[Any, Any, list[BlockedChain]]: ...


def blocked_chains(
    conn: AnyConnection,
) -> list[BlockedChain] | Coroutine[Any, Any, list[BlockedChain]]:
    """Ordered chains whose head failed for good. Unblock one with ``retry([head_id])`` (run
    the head again) or ``cancel([head_id])`` (skip it)."""
    return _connections.run(conn, query("blocked_chains"), None, _chains)


@dataclass(frozen=True, kw_only=True)
class StatsBucket:
    """Attempts that finished in one minute, as counted by the runners."""

    minute: datetime
    completed: int
    retried: int
    failed: int
    interrupted: int = 0
    """Attempts handed back unfinished by a stopping runner (not counted as attempts)."""


class _BucketRow(NamedTuple):
    """A row of ``stats``: a ``StatsBucket``'s fields, in order."""

    minute: datetime
    completed: int
    retried: int
    failed: int
    interrupted: int


def _buckets(rows: Rows) -> list[StatsBucket]:
    return [StatsBucket(**_BucketRow(*row)._asdict()) for row in rows]


@overload
def throughput(
    conn: SyncConnectionLike, since: datetime, channel_name: str | None = None
) -> list[StatsBucket]: ...


@overload
def throughput(
    conn: AsyncConnectionLike, since: datetime, channel_name: str | None = None
) -> Coroutine[Any, Any, list[StatsBucket]]: ...


def throughput(
    conn: AnyConnection, since: datetime, channel_name: str | None = None
) -> list[StatsBucket] | Coroutine[Any, Any, list[StatsBucket]]:
    """Completed, retried, failed and interrupted attempts per minute since ``since``
    (timezone-aware), for one channel or all; minutes without any are left out. Runners report
    every few seconds and the counts are kept for seven days."""
    if not isinstance(since, datetime) or since.tzinfo is None:
        raise ConfigurationError(f"since must be a timezone-aware datetime, got {since!r}")
    if channel_name is not None:
        check_text("channel_name", channel_name)
    params = {"since": since, "channel_name": channel_name}
    return _connections.run(conn, query("stats"), params, _buckets)
