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

Batches: each batch is one statement over at most ``batch_size`` jobs, walking the primary key
upwards from where the last batch stopped, so the walk ends and no lock is held longer than a
batch. Given a pool or an autocommit connection, each batch is its own transaction. Given a
connection in a transaction (psycopg's default), every batch runs in that one transaction and
its locks are held until the caller commits: the call never commits for the caller.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, overload

from .. import _connections
from .._connections import AnyConnection, AsyncConnectionLike, Rows, SyncConnectionLike
from .._validate import check_int, check_text
from ..errors import ConfigurationError, SqlxmqError
from ..sql import QueryName, query
from ..states import JobState, StateName, to_state
from ._counts import BlockedChain, _chains
from ._ids import ids

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

BulkAction = Literal["retry", "cancel", "delete", "run_now"]

ACTION_STATES: Mapping[BulkAction, frozenset[JobState]] = {
    "retry": frozenset({JobState.FAILED}),
    "cancel": frozenset({JobState.SCHEDULED, JobState.WAITING, JobState.READY, JobState.RETRYING}),
    "delete": frozenset({JobState.FAILED, JobState.COMPLETED, JobState.CANCELLED}),
    "run_now": frozenset({JobState.SCHEDULED, JobState.RETRYING}),
}
"""The states each bulk action applies to (see the module's docstring)."""

BATCH_SIZE = 1000
"""Jobs per batch (per statement, and per transaction given a pool) by default."""

_NO_ID = uuid.UUID(int=0)


class EmptyFilterError(ConfigurationError):
    """A bulk action was given a filter with no criterion; pass ``all=True`` to mean every
    job."""

    __module__ = "sqlxmq_py.admin"


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


Age = datetime | timedelta


@dataclass(frozen=True, kw_only=True)
class JobFilter:
    """Which jobs a bulk action takes: those matching every criterion given.

    Args:
        states: job states (names or :class:`JobState`), narrowing the action's own states.
        channel_name, name, job_key: exact values.
        error: text found anywhere in the job's last error (case-insensitive; ``%`` and ``_``
            match themselves).
        older_than, newer_than: created before / at or after this time (timezone-aware
            datetime) or this age (a timedelta back from the database's now()).
        all: required when no other criterion is given, to mean every job.

    Raises:
        EmptyFilterError: no criterion and not ``all``.
        ConfigurationError: an invalid value.
    """

    states: Sequence[JobState | StateName] | None = None
    channel_name: str | None = None
    name: str | None = None
    job_key: str | None = None
    error: str | None = None
    older_than: Age | None = None
    newer_than: Age | None = None
    all: bool = False

    def __post_init__(self) -> None:
        if self.states is not None:
            if isinstance(self.states, str):
                raise ConfigurationError("states must be a list of states, not one str")
            named = [to_state(s) for s in self.states]
            unknown = [s for s, n in zip(self.states, named, strict=True) if n is None]
            if unknown:
                known = ", ".join(JobState)
                raise ConfigurationError(f"unknown job states {unknown}; known: {known}")
            object.__setattr__(self, "states", tuple(s for s in named if s is not None))
        for option in ("channel_name", "name", "job_key", "error"):
            value = getattr(self, option)
            if value is not None:
                check_text(option, value)
        for option in ("older_than", "newer_than"):
            value = getattr(self, option)
            if (
                value is not None
                and not isinstance(value, timedelta)
                and not (isinstance(value, datetime) and value.tzinfo is not None)
            ):
                raise ConfigurationError(
                    f"{option} must be a timedelta (an age) or a timezone-aware datetime, "
                    f"got {value!r}"
                )
        if not self.all and self.empty:
            raise EmptyFilterError(
                "a bulk action needs at least one criterion (states, channel_name, name, "
                "job_key, error, older_than, newer_than); pass all=True to mean every job"
            )

    @property
    def empty(self) -> bool:
        """Whether no criterion is set."""
        return (
            self.states is None
            and self.channel_name is None
            and self.name is None
            and self.job_key is None
            and self.error is None
            and self.older_than is None
            and self.newer_than is None
        )


def like_pattern(text: str) -> str:
    """An ILIKE pattern that finds ``text`` anywhere, its ``%``, ``_`` and ``\\`` literal."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def filter_params(job_filter: JobFilter, action: BulkAction | None) -> dict[str, object]:
    """The statements' parameters for a filter, narrowed to an action's states (pure)."""
    if not isinstance(job_filter, JobFilter):
        raise ConfigurationError(f"expected a JobFilter, got {job_filter!r}")
    wanted = set(JobState if action is None else ACTION_STATES[action])
    if job_filter.states is not None:
        wanted &= {s for s in map(to_state, job_filter.states) if s is not None}
    older, newer = job_filter.older_than, job_filter.newer_than
    return {
        "labels": sorted({code for state in wanted for code in state.codes}),
        "history_states": sorted(state.value for state in wanted if state.kept),
        "channel_name": job_filter.channel_name,
        "name": job_filter.name,
        "job_key": job_filter.job_key,
        "error": None if job_filter.error is None else like_pattern(job_filter.error),
        "older_at": older if isinstance(older, datetime) else None,
        "older_age": older if isinstance(older, timedelta) else None,
        "newer_at": newer if isinstance(newer, datetime) else None,
        "newer_age": newer if isinstance(newer, timedelta) else None,
    }


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
    """A bulk action's statements (one walk of the primary key each) and parameters."""

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
