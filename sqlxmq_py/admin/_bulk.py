"""Bulk actions: retry, cancel, delete or run now every job matching a filter, in batches.

Which jobs each action takes (whatever the filter's states say, it only narrows these):

- ``retry_matching``: **failed** jobs; each runs again with a fresh set of attempts (as
  :func:`retry`). Retrying jobs already have attempts left: ``run_now`` runs them now.
- ``cancel_matching``: jobs not yet running: **scheduled, waiting, ready, retrying**. Each is
  locked and checked again before it is cancelled, so a job a runner leases meanwhile runs and
  is not cancelled; running jobs are never touched (cancel them by id to ask their runner to
  stop). Uncommitted (two-phase) jobs belong to their spawner's open transaction and are left.
- ``delete_matching``: **failed** jobs (removed from the queue, as ``purge`` does) and the kept
  **completed** and **cancelled** jobs (removed from the history).
- ``run_now``: **scheduled** and **retrying** jobs become ready now (their chain or parents
  permitting), with the attempts they have left.

Batches: each batch is one statement over at most ``batch_size`` jobs, walking ids upwards
from where the last batch stopped along the index of the filter's most selective criterion
(key, name, channel, else states: ``_job_filter.walk_for``), so the walk ends, reads only jobs that
index holds, and no lock is held longer than a batch. Given a pool or an autocommit
connection, each batch is its own transaction. Given a connection in a transaction (psycopg's
default), every batch runs in that one transaction and its locks are held until the caller
commits: the call never commits for the caller.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, overload

from .. import _connections
from .._connections import AnyConnection, AsyncConnectionLike, Rows, SyncConnectionLike
from .._validate import check_int, check_text
from ..errors import SqlxmqError
from ..sql import QueryName, query
from ._counts import BlockedChain, _chains
from ._ids import ids
from ._job_filter import ACTION_STATES, BulkAction, EmptyFilterError, JobFilter, filter_params

__all__ = [
    "ACTION_STATES",
    "BulkAction",
    "ChainsWouldBeReleasedError",
    "EmptyFilterError",
    "JobFilter",
    "cancel_matching",
    "chains_released",
    "count_matching",
    "delete_matching",
    "retry_matching",
    "run_now",
]

BATCH_SIZE = 1000
"""Jobs per batch (per statement, and per transaction given a pool) by default."""

_NO_ID = uuid.UUID(int=0)


class ChainsWouldBeReleasedError(SqlxmqError):
    """A delete would remove the failed head of ordered chains and so run the jobs waiting
    behind it; :attr:`chains` lists them. Pass ``release_chains=True`` to go ahead."""

    __module__ = "sqlxmq_py.admin"

    def __init__(self, chains: Sequence[BlockedChain]) -> None:
        self.chains = tuple(chains)
        waiting = sum(c.waiting for c in self.chains)
        super().__init__(
            f"deleting these jobs would release {len(self.chains)} ordered chain(s) with "
            f"{waiting} job(s) waiting behind a failed head; pass release_chains=True to "
            "delete them anyway, or narrow the filter"
        )


def _count(rows: Rows) -> int:
    return int(rows[0][0])


@overload
def count_matching(
    conn: SyncConnectionLike, job_filter: JobFilter, *, action: BulkAction | None = None
) -> int: ...


@overload
def count_matching(
    conn: AsyncConnectionLike, job_filter: JobFilter, *, action: BulkAction | None = None
) -> Coroutine[Any, Any, int]: ...


def count_matching(
    conn: AnyConnection, job_filter: JobFilter, *, action: BulkAction | None = None
) -> int | Coroutine[Any, Any, int]:
    """How many jobs (queued and kept) match the filter; with ``action``, how many of them
    that action applies to (what it would change, unless jobs move meanwhile)."""
    params = filter_params(job_filter, action)
    return _connections.run(conn, query("bulk_count"), params, _count, prepare=False)


@overload
def chains_released(conn: SyncConnectionLike, job_filter: JobFilter) -> list[BlockedChain]: ...


@overload
def chains_released(
    conn: AsyncConnectionLike, job_filter: JobFilter
) -> Coroutine[Any, Any, list[BlockedChain]]: ...


def chains_released(
    conn: AnyConnection, job_filter: JobFilter
) -> list[BlockedChain] | Coroutine[Any, Any, list[BlockedChain]]:
    """The preview of ``delete_matching``: the ordered chains whose failed head it would delete,
    running the jobs waiting behind it."""
    params = filter_params(job_filter, "delete")
    return _connections.run(conn, query("bulk_chains"), params, _chains, prepare=False)


Progress = Callable[[int], None]


@dataclass(frozen=True, kw_only=True)
class _Walk:
    """A bulk action's statements (one index walk each) and parameters."""

    statements: tuple[QueryName, ...]
    params: dict[str, object]


def _walk(
    action: BulkAction,
    job_filter: JobFilter,
    batch_size: int,
    *,
    reason: str = "cancelled",
    release_chains: bool = False,
) -> _Walk:
    params = filter_params(job_filter, action)
    params.update(
        action=action,
        batch=check_int("batch_size", batch_size, minimum=1, maximum=100_000),
        reason=check_text("reason", reason),
        release_chains=release_chains,
    )
    statements: tuple[QueryName, ...] = ("bulk_batch",)
    if params["history_states"]:
        statements += ("bulk_delete_history",)
    return _Walk(statements=statements, params=params)


def _step(rows: Rows) -> tuple[uuid.UUID | None, int]:
    last, changed = rows[0]
    return last, int(changed)


def _walk_sync(conn: SyncConnectionLike, walk: _Walk, progress: Progress | None) -> int:
    total = 0
    for statement in walk.statements:
        after: uuid.UUID | None = _NO_ID
        while after is not None:
            rows = _connections.fetch_sync(
                conn, query(statement), {**walk.params, "after": after}, prepare=False
            )
            after, changed = _step(rows)
            total += changed
            if progress is not None and after is not None:
                progress(total)
    return total


async def _walk_async(conn: AsyncConnectionLike, walk: _Walk, progress: Progress | None) -> int:
    total = 0
    for statement in walk.statements:
        after: uuid.UUID | None = _NO_ID
        while after is not None:
            rows = await _connections.fetch_async(
                conn, query(statement), {**walk.params, "after": after}, prepare=False
            )
            after, changed = _step(rows)
            total += changed
            if progress is not None and after is not None:
                progress(total)
    return total


def _run(conn: AnyConnection, walk: _Walk, progress: Progress | None) -> Any:
    if _connections.is_async(conn):
        return _walk_async(conn, walk, progress)
    return _walk_sync(conn, walk, progress)


@overload
def retry_matching(
    conn: SyncConnectionLike,
    job_filter: JobFilter,
    *,
    batch_size: int = BATCH_SIZE,
    progress: Progress | None = None,
) -> int: ...


@overload
def retry_matching(
    conn: AsyncConnectionLike,
    job_filter: JobFilter,
    *,
    batch_size: int = BATCH_SIZE,
    progress: Progress | None = None,
) -> Coroutine[Any, Any, int]: ...


def retry_matching(
    conn: AnyConnection,
    job_filter: JobFilter,
    *,
    batch_size: int = BATCH_SIZE,
    progress: Progress | None = None,
) -> int | Coroutine[Any, Any, int]:
    """Runs every matching failed job again with a fresh set of attempts, ``batch_size`` at a
    time; returns how many. ``progress`` is called with the running total after each batch."""
    result: int | Coroutine[Any, Any, int] = _run(
        conn, _walk("retry", job_filter, batch_size), progress
    )
    return result


@overload
def cancel_matching(
    conn: SyncConnectionLike,
    job_filter: JobFilter,
    *,
    reason: str = "cancelled",
    batch_size: int = BATCH_SIZE,
    progress: Progress | None = None,
) -> int: ...


@overload
def cancel_matching(
    conn: AsyncConnectionLike,
    job_filter: JobFilter,
    *,
    reason: str = "cancelled",
    batch_size: int = BATCH_SIZE,
    progress: Progress | None = None,
) -> Coroutine[Any, Any, int]: ...


def cancel_matching(
    conn: AnyConnection,
    job_filter: JobFilter,
    *,
    reason: str = "cancelled",
    batch_size: int = BATCH_SIZE,
    progress: Progress | None = None,
) -> int | Coroutine[Any, Any, int]:
    """Cancels every matching job that is not running (scheduled, waiting, ready, retrying),
    ``batch_size`` at a time; returns how many. They are kept as cancelled history with
    ``reason``; their ordered chains close up and their continuations are cancelled too."""
    result: int | Coroutine[Any, Any, int] = _run(
        conn, _walk("cancel", job_filter, batch_size, reason=reason), progress
    )
    return result


@overload
def delete_matching(
    conn: SyncConnectionLike,
    job_filter: JobFilter,
    *,
    release_chains: bool = False,
    batch_size: int = BATCH_SIZE,
    progress: Progress | None = None,
) -> int: ...


@overload
def delete_matching(
    conn: AsyncConnectionLike,
    job_filter: JobFilter,
    *,
    release_chains: bool = False,
    batch_size: int = BATCH_SIZE,
    progress: Progress | None = None,
) -> Coroutine[Any, Any, int]: ...


def delete_matching(
    conn: AnyConnection,
    job_filter: JobFilter,
    *,
    release_chains: bool = False,
    batch_size: int = BATCH_SIZE,
    progress: Progress | None = None,
) -> int | Coroutine[Any, Any, int]:
    """Deletes every matching failed job (from the queue) and kept completed or cancelled job
    (from the history), ``batch_size`` at a time; returns how many.

    Deleting the failed head of an ordered chain runs the jobs waiting behind it. Unless
    ``release_chains`` is true, the call first looks for such chains (:func:`chains_released`)
    and raises if there are any, and every batch keeps such heads, so a job that fails while
    the delete runs does not release its chain either.

    Raises:
        ChainsWouldBeReleasedError: chains would be released and ``release_chains`` is false.
    """
    walk = _walk("delete", job_filter, batch_size, release_chains=release_chains)
    if release_chains:
        result: int | Coroutine[Any, Any, int] = _run(conn, walk, progress)
        return result
    if _connections.is_async(conn):
        return _delete_async(conn, job_filter, walk, progress)
    chains = chains_released(conn, job_filter)
    if chains:
        raise ChainsWouldBeReleasedError(chains)
    return _walk_sync(conn, walk, progress)


async def _delete_async(
    conn: AsyncConnectionLike, job_filter: JobFilter, walk: _Walk, progress: Progress | None
) -> int:
    chains = await chains_released(conn, job_filter)
    if chains:
        raise ChainsWouldBeReleasedError(chains)
    return await _walk_async(conn, walk, progress)


@overload
def run_now(
    conn: SyncConnectionLike,
    jobs: Iterable[uuid.UUID] | JobFilter,
    *,
    batch_size: int = BATCH_SIZE,
    progress: Progress | None = None,
) -> int: ...


@overload
def run_now(
    conn: AsyncConnectionLike,
    jobs: Iterable[uuid.UUID] | JobFilter,
    *,
    batch_size: int = BATCH_SIZE,
    progress: Progress | None = None,
) -> Coroutine[Any, Any, int]: ...


def run_now(
    conn: AnyConnection,
    jobs: Iterable[uuid.UUID] | JobFilter,
    *,
    batch_size: int = BATCH_SIZE,
    progress: Progress | None = None,
) -> int | Coroutine[Any, Any, int]:
    """Makes scheduled and retrying jobs (these ids, or every match of a filter, in batches)
    ready now, with the attempts they have left; returns how many. A job still behind its
    ordered chain or waiting for parents runs when they let it."""
    if isinstance(jobs, JobFilter):
        result: int | Coroutine[Any, Any, int] = _run(
            conn, _walk("run_now", jobs, batch_size), progress
        )
        return result
    return _connections.run(conn, query("run_now"), {"ids": ids(jobs)}, len)
