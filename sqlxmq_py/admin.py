"""Looking at and managing jobs: status, listing, counts, cancel, retry, reschedule, blocked
ordered chains, purging and per-channel limits.

Like spawning, every function takes a sync connection or pool (and returns its result) or an
async one (and returns an awaitable), and runs in the caller's transaction without committing it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Coroutine, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple, overload

from . import _connections
from ._connections import AnyConnection, AsyncConnectionLike, Rows, SyncConnectionLike
from ._validate import check_int, check_name, check_text
from .cron import ScheduleRow
from .errors import ConfigurationError
from .sql import QueryName, query
from .states import JOB_STATES, LABELS, JobState, StateName, state_of, to_state

__all__ = [
    "ESTIMATE_ABOVE",
    "AttemptError",
    "BlockedChain",
    "JobState",
    "JobStatus",
    "PurgeResult",
    "QueueCount",
    "Schedule",
    "StatsBucket",
    "attempt_errors",
    "blocked_chains",
    "cancel",
    "channel_limits",
    "delete_schedule",
    "job_status",
    "list_jobs",
    "list_schedules",
    "purge",
    "queue_counts",
    "reschedule",
    "retry",
    "set_channel_limit",
    "throughput",
]


@dataclass(frozen=True, kw_only=True)
class JobStatus:
    """A job as the queue sees it now."""

    id: uuid.UUID
    name: str
    state: JobState
    attempts: int
    max_attempts: int
    channel_name: str
    channel_args: str
    priority: int
    job_key: str | None
    run_at: datetime | None
    """When it may run (scheduled, retrying, ready) or when its lease ends (running)."""
    created_at: datetime
    finished_at: datetime | None
    last_error: str | None
    result: Any
    """The job's return value, when it completed and was kept (``retain_for``)."""
    cancel_requested: bool


@dataclass(frozen=True, kw_only=True)
class AttemptError:
    """How one failed attempt of a job ended."""

    attempt: int
    at: datetime
    error: str
    """The error's text (its first 4,000 characters; ``JobStatus.last_error`` has all of the
    last one)."""


def _attempt_errors(rows: Rows) -> list[AttemptError]:
    if not rows or rows[0][0] is None:
        return []
    return [
        AttemptError(
            attempt=int(e["attempt"]),
            at=datetime.fromisoformat(e["at"]),
            error=str(e["error"]),
        )
        for e in json.loads(rows[0][0])
    ]


@overload
def attempt_errors(conn: SyncConnectionLike, job_id: uuid.UUID) -> list[AttemptError]: ...


@overload
def attempt_errors(
    conn: AsyncConnectionLike, job_id: uuid.UUID
) -> Coroutine[Any, Any, list[AttemptError]]: ...


def attempt_errors(
    conn: AnyConnection, job_id: uuid.UUID
) -> list[AttemptError] | Coroutine[Any, Any, list[AttemptError]]:
    """The errors of a job's failed attempts, oldest first (the last 25 attempts), queued or
    kept; empty for a job that never failed or is gone."""
    (checked,) = _ids([job_id])
    return _connections.run(conn, query("attempt_errors"), {"id": checked}, _attempt_errors)


class StatusRow(NamedTuple):
    """A row of ``status`` and of the ``list_jobs*`` statements (their columns, in order)."""

    id: uuid.UUID
    name: str
    code: str
    """``mq_jobs.state``, or a kept job's state as ``mq_history`` stores it."""
    attempts: int
    max_attempts: int
    channel_name: str
    channel_args: str
    priority: int
    job_key: str | None
    run_at: datetime | None
    created_at: datetime
    finished_at: datetime | None
    last_error: str | None
    result: str | None
    """The kept result as JSON text."""
    cancel_requested: bool


def _status(row: tuple[Any, ...]) -> JobStatus:
    r = StatusRow._make(row)
    return JobStatus(
        id=r.id,
        name=r.name,
        state=state_of(r.code, r.attempts),
        attempts=r.attempts,
        max_attempts=r.max_attempts,
        channel_name=r.channel_name,
        channel_args=r.channel_args,
        priority=r.priority,
        job_key=r.job_key,
        run_at=r.run_at,
        created_at=r.created_at,
        finished_at=r.finished_at,
        last_error=r.last_error,
        result=None if r.result is None else json.loads(r.result),
        cancel_requested=r.cancel_requested,
    )


def _first_status(rows: Rows) -> JobStatus | None:
    return _status(rows[0]) if rows else None


def _ids(job_ids: Iterable[uuid.UUID]) -> list[uuid.UUID]:
    if isinstance(job_ids, uuid.UUID):
        raise ConfigurationError("pass a list of job ids, not one id")
    ids = list(job_ids)
    for job_id in ids:
        if not isinstance(job_id, uuid.UUID):
            raise ConfigurationError(f"job ids must be uuid.UUID, got {job_id!r}")
    return ids


@overload
def job_status(conn: SyncConnectionLike, job_id: uuid.UUID) -> JobStatus | None: ...


@overload
def job_status(
    conn: AsyncConnectionLike, job_id: uuid.UUID
) -> Coroutine[Any, Any, JobStatus | None]: ...


def job_status(
    conn: AnyConnection, job_id: uuid.UUID
) -> JobStatus | Coroutine[Any, Any, JobStatus | None] | None:
    """The job's status, or ``None`` if no such job is queued or kept in the history."""
    (checked,) = _ids([job_id])
    return _connections.run(conn, query("status"), {"id": checked}, _first_status)


_ALL_UUIDS_BELOW = uuid.UUID(int=2**128 - 1)
_ALL_LABELS = frozenset(LABELS)
_HISTORY_STATES = tuple(state for state in JOB_STATES if state.kept)
_RUNNING = JobState.RUNNING.codes


def list_statement(
    states: Sequence[JobState | StateName] | None,
    channel_name: str | None,
    name: str | None,
    job_key: str | None,
    limit: int,
    before: uuid.UUID | None,
) -> tuple[QueryName, dict[str, object]] | None:
    """The statement that serves a ``list_jobs`` call from an index, and its parameters (pure);
    ``None`` when nothing can match.

    The most selective filter set picks the statement: a key (one queued job at most), else a
    name, else a channel, else states; the other filters are checked on the rows it walks.
    """
    if isinstance(states, str):
        raise ConfigurationError("states must be a list of states, not one str")
    wanted = None if states is None else [to_state(s) for s in states]
    if wanted is not None and None in wanted:
        unknown = [s for s, w in zip(states or (), wanted, strict=True) if w is None]
        known = ", ".join(JOB_STATES)
        raise ConfigurationError(f"unknown job states {unknown}; known: {known}")
    for option, value in (("channel_name", channel_name), ("name", name), ("job_key", job_key)):
        if value is not None:
            check_text(option, value)
    if before is not None and not isinstance(before, uuid.UUID):
        raise ConfigurationError(f"before must be a job id (uuid.UUID), got {before!r}")
    checked_limit = check_int("limit", limit, minimum=1, maximum=10_000)
    if before is not None and before.int == 0:
        return None  # no id is lower
    labels = set(_ALL_LABELS)
    history = list(_HISTORY_STATES)
    if wanted is not None:
        labels = {code for state in wanted if state is not None for code in state.codes}
        history = [s for s in _HISTORY_STATES if s in wanted]
    every_state = labels == _ALL_LABELS and len(history) == len(_HISTORY_STATES)
    params: dict[str, object] = {
        # keyset paging: the page holds the jobs with ids up to upto (before, exclusive)
        "upto": _ALL_UUIDS_BELOW if before is None else uuid.UUID(int=before.int - 1),
        "limit": checked_limit,
        "hot": bool(labels),
        "history": bool(history),
        "labels": sorted(labels.difference(_RUNNING)),
        "running": not labels.isdisjoint(_RUNNING),
        "history_states": [state.value for state in history],
        "channel_name": channel_name,
        "name": name,
        "job_key": job_key,
    }
    if job_key is not None or name is not None:
        params["labels"] = sorted(labels)  # these statements check 'l' like any other label
        return ("list_jobs_by_key" if job_key is not None else "list_jobs_by_name"), params
    if channel_name is not None:
        return "list_jobs_by_channel", params
    if not every_state:
        return "list_jobs_by_state", params
    return "list_jobs", params


def _statuses(rows: Rows) -> list[JobStatus]:
    return [_status(row) for row in rows]


@overload
def list_jobs(
    conn: SyncConnectionLike,
    *,
    states: Sequence[JobState | StateName] | None = None,
    channel_name: str | None = None,
    name: str | None = None,
    job_key: str | None = None,
    limit: int = 50,
    before: uuid.UUID | None = None,
) -> list[JobStatus]: ...


@overload
def list_jobs(
    conn: AsyncConnectionLike,
    *,
    states: Sequence[JobState | StateName] | None = None,
    channel_name: str | None = None,
    name: str | None = None,
    job_key: str | None = None,
    limit: int = 50,
    before: uuid.UUID | None = None,
) -> Coroutine[Any, Any, list[JobStatus]]: ...


def list_jobs(
    conn: AnyConnection,
    *,
    states: Sequence[JobState | StateName] | None = None,
    channel_name: str | None = None,
    name: str | None = None,
    job_key: str | None = None,
    limit: int = 50,
    before: uuid.UUID | None = None,
) -> list[JobStatus] | Coroutine[Any, Any, list[JobStatus]]:
    """Jobs, newest first, queued and kept; filtered by state, channel, name and key.

    Pages: pass the last id of a page as ``before`` to get the next one. Every page is read
    from an index (migration 0004), so its cost does not grow with the number of jobs.
    """
    statement = list_statement(states, channel_name, name, job_key, limit, before)
    if statement is None:
        return _connections.run(conn, b"SELECT 1 WHERE false", None, _statuses)
    name_of_query, params = statement
    return _connections.run(conn, query(name_of_query), params, _statuses, prepare=False)


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
    """A row of ``queue_counts``: the state by name."""

    channel_name: str
    state: str
    jobs: int
    oldest_ready_age_s: float | None


class _EstimatedCountRow(NamedTuple):
    """A row of ``queue_counts_estimated``: the state as an admin index label."""

    channel_name: str
    label: str
    jobs: int
    exact: bool
    oldest_ready_age_s: float | None


def _counts(rows: Rows) -> list[QueueCount]:
    return [
        QueueCount(
            channel_name=r.channel_name,
            state=JobState(r.state),
            count=r.jobs,
            oldest_ready_age_s=r.oldest_ready_age_s,
        )
        for r in map(_CountRow._make, rows)
    ]


def _estimated_counts(rows: Rows) -> list[QueueCount]:
    merged: dict[tuple[str, JobState], QueueCount] = {}
    for r in map(_EstimatedCountRow._make, rows):
        state = LABELS[r.label]
        count, exact = r.jobs, r.exact
        before = merged.get((r.channel_name, state))
        if before is not None:  # blocked ordered jobs and continuations are both waiting
            count += before.count
            exact = exact and before.exact
        merged[r.channel_name, state] = QueueCount(
            channel_name=r.channel_name,
            state=state,
            count=count,
            oldest_ready_age_s=r.oldest_ready_age_s,
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
            conn, query("queue_counts_estimated"), params, _estimated_counts, prepare=False
        )
    return _connections.run(conn, query("queue_counts"), None, _counts)


def _outcomes(rows: Rows) -> dict[uuid.UUID, str]:
    return dict(rows)


@overload
def cancel(
    conn: SyncConnectionLike, job_ids: Iterable[uuid.UUID], reason: str = "cancelled"
) -> dict[uuid.UUID, str]: ...


@overload
def cancel(
    conn: AsyncConnectionLike, job_ids: Iterable[uuid.UUID], reason: str = "cancelled"
) -> Coroutine[Any, Any, dict[uuid.UUID, str]]: ...


def cancel(
    conn: AnyConnection, job_ids: Iterable[uuid.UUID], reason: str = "cancelled"
) -> dict[uuid.UUID, str] | Coroutine[Any, Any, dict[uuid.UUID, str]]:
    """Cancels jobs. Returns ``{id: "cancelled"}`` for jobs that were waiting (they leave the
    queue now, kept as cancelled history; an ordered chain closes up behind them; their
    continuations are cancelled too) and ``{id: "requested"}`` for running jobs, whose runner
    is asked to stop them (``current_job.cancelled`` becomes true). Unknown ids are left out."""
    params = {"ids": _ids(job_ids), "reason": check_text("reason", reason)}
    return _connections.run(conn, query("cancel"), params, _outcomes)


def _id_list(rows: Rows) -> list[uuid.UUID]:
    return [row[0] for row in rows]


@overload
def retry(conn: SyncConnectionLike, job_ids: Iterable[uuid.UUID]) -> list[uuid.UUID]: ...


@overload
def retry(
    conn: AsyncConnectionLike, job_ids: Iterable[uuid.UUID]
) -> Coroutine[Any, Any, list[uuid.UUID]]: ...


def retry(
    conn: AnyConnection, job_ids: Iterable[uuid.UUID]
) -> list[uuid.UUID] | Coroutine[Any, Any, list[uuid.UUID]]:
    """Runs failed jobs again, with a fresh set of attempts; returns the ids retried.

    Retrying the failed head of an ordered chain unblocks the chain once it succeeds.
    """
    return _connections.run(conn, query("retry"), {"ids": _ids(job_ids)}, _id_list)


@overload
def reschedule(
    conn: SyncConnectionLike,
    job_ids: Iterable[uuid.UUID],
    *,
    run_at: datetime | None = None,
    priority: int | None = None,
    retries: int | None = None,
) -> list[uuid.UUID]: ...


@overload
def reschedule(
    conn: AsyncConnectionLike,
    job_ids: Iterable[uuid.UUID],
    *,
    run_at: datetime | None = None,
    priority: int | None = None,
    retries: int | None = None,
) -> Coroutine[Any, Any, list[uuid.UUID]]: ...


def reschedule(
    conn: AnyConnection,
    job_ids: Iterable[uuid.UUID],
    *,
    run_at: datetime | None = None,
    priority: int | None = None,
    retries: int | None = None,
) -> list[uuid.UUID] | Coroutine[Any, Any, list[uuid.UUID]]:
    """Changes waiting jobs (not running or failed ones): when they run (a timezone-aware
    ``run_at``), their priority, and how many retries they have left. Returns the ids changed."""
    if run_at is not None and (not isinstance(run_at, datetime) or run_at.tzinfo is None):
        raise ConfigurationError(f"run_at must be a timezone-aware datetime, got {run_at!r}")
    params = {
        "ids": _ids(job_ids),
        "run_at": run_at,
        "priority": None
        if priority is None
        else check_int("priority", priority, minimum=-(2**31 - 1)),
        "retries": None
        if retries is None
        else check_int("retries", retries, minimum=0, maximum=2**31 - 2),
    }
    return _connections.run(conn, query("reschedule"), params, _id_list)


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
    return [BlockedChain(**_ChainRow._make(row)._asdict()) for row in rows]


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
class PurgeResult:
    """How many rows a purge removed."""

    failed: int
    history: int


def _cutoff(option: str, value: datetime | timedelta | None) -> datetime | timedelta | None:
    if value is None or isinstance(value, timedelta):
        return value
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value
    raise ConfigurationError(
        f"{option} must be a timedelta (an age) or a timezone-aware datetime, got {value!r}"
    )


@overload
def purge(
    conn: SyncConnectionLike,
    *,
    failed_before: datetime | timedelta | None = None,
    history_before: datetime | timedelta | None = None,
) -> PurgeResult: ...


@overload
def purge(
    conn: AsyncConnectionLike,
    *,
    failed_before: datetime | timedelta | None = None,
    history_before: datetime | timedelta | None = None,
) -> Coroutine[Any, Any, PurgeResult]: ...


def purge(
    conn: AnyConnection,
    *,
    failed_before: datetime | timedelta | None = None,
    history_before: datetime | timedelta | None = None,
) -> PurgeResult | Coroutine[Any, Any, PurgeResult]:
    """Removes expired history (always), history that finished before ``history_before``, and
    failed jobs that failed before ``failed_before``. Each cutoff is a timezone-aware datetime
    or an age (a timedelta back from now)."""
    failed = _cutoff("failed_before", failed_before)
    history = _cutoff("history_before", history_before)
    params = {
        "failed": failed is not None,
        "failed_at": failed if isinstance(failed, datetime) else None,
        "failed_age": failed if isinstance(failed, timedelta) else None,
        "history_at": history if isinstance(history, datetime) else None,
        "history_age": history if isinstance(history, timedelta) else None,
    }
    return _connections.run(conn, query("purge"), params, _purged)


class _PurgedRow(NamedTuple):
    """The row of ``purge``: rows removed from each table."""

    failed: int
    history: int


def _purged(rows: Rows) -> PurgeResult:
    r = _PurgedRow._make(rows[0])
    return PurgeResult(failed=r.failed, history=r.history)


@overload
def set_channel_limit(
    conn: SyncConnectionLike, channel_name: str, max_running: int | None
) -> None: ...


@overload
def set_channel_limit(
    conn: AsyncConnectionLike, channel_name: str, max_running: int | None
) -> Coroutine[Any, Any, None]: ...


def set_channel_limit(
    conn: AnyConnection, channel_name: str, max_running: int | None
) -> Coroutine[Any, Any, None] | None:
    """Lets at most ``max_running`` jobs of the channel run at once across all runners
    (``None`` removes the limit). Runners pick the change up within a few seconds."""
    check_name("channel_name", channel_name)
    if max_running is None:
        return _connections.run(
            conn, query("delete_channel_limit"), {"channel_name": channel_name}, _nothing
        )
    params = {
        "channel_name": channel_name,
        "max_running": check_int("max_running", max_running, minimum=0),
    }
    return _connections.run(conn, query("set_channel_limit"), params, _nothing)


def _nothing(_rows: Rows) -> None:
    return None


def _limits(rows: Rows) -> dict[str, int]:
    return dict(rows)


@overload
def channel_limits(conn: SyncConnectionLike) -> dict[str, int]: ...


@overload
def channel_limits(conn: AsyncConnectionLike) -> Coroutine[Any, Any, dict[str, int]]: ...


def channel_limits(conn: AnyConnection) -> dict[str, int] | Coroutine[Any, Any, dict[str, int]]:
    """The channel limits set with :func:`set_channel_limit`."""
    return _connections.run(conn, query("channel_limits"), None, _limits)


@dataclass(frozen=True, kw_only=True)
class StatsBucket:
    """Attempts that finished in one minute, as counted by the runners."""

    minute: datetime
    completed: int
    retried: int
    failed: int


class _BucketRow(NamedTuple):
    """A row of ``stats``: a ``StatsBucket``'s fields, in order."""

    minute: datetime
    completed: int
    retried: int
    failed: int


def _buckets(rows: Rows) -> list[StatsBucket]:
    return [StatsBucket(**_BucketRow._make(row)._asdict()) for row in rows]


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
    """Completed, retried and failed attempts per minute since ``since`` (timezone-aware), for
    one channel or all; minutes without any are left out. Runners report every few seconds and
    the counts are kept for seven days."""
    if not isinstance(since, datetime) or since.tzinfo is None:
        raise ConfigurationError(f"since must be a timezone-aware datetime, got {since!r}")
    if channel_name is not None:
        check_text("channel_name", channel_name)
    params = {"since": since, "channel_name": channel_name}
    return _connections.run(conn, query("stats"), params, _buckets)


@dataclass(frozen=True, kw_only=True)
class Schedule:
    """A recurring schedule recorded in the database (see ``JobRegistry.add_cron``)."""

    name: str
    cron: str
    timezone: str
    job_name: str
    channel_name: str
    last_tick: datetime


def _schedules(rows: Rows) -> list[Schedule]:
    return [
        Schedule(
            name=r.name,
            cron=r.cron,
            timezone=r.timezone,
            job_name=r.job_name,
            channel_name=r.channel_name,
            last_tick=r.last_tick,
        )
        for r in map(ScheduleRow._make, rows)
    ]


@overload
def list_schedules(conn: SyncConnectionLike) -> list[Schedule]: ...


@overload
def list_schedules(conn: AsyncConnectionLike) -> Coroutine[Any, Any, list[Schedule]]: ...


def list_schedules(conn: AnyConnection) -> list[Schedule] | Coroutine[Any, Any, list[Schedule]]:
    """The recurring schedules runners have recorded. Any runner spawns every schedule listed,
    whoever registered it: delete one that no code defines any more."""
    return _connections.run(conn, query("schedules"), None, _schedules)


def _deleted(rows: Rows) -> bool:
    return bool(rows)


@overload
def delete_schedule(conn: SyncConnectionLike, name: str) -> bool: ...


@overload
def delete_schedule(conn: AsyncConnectionLike, name: str) -> Coroutine[Any, Any, bool]: ...


def delete_schedule(conn: AnyConnection, name: str) -> bool | Coroutine[Any, Any, bool]:
    """Deletes a recurring schedule; returns whether it existed. A runner whose registry still
    defines it records it again when it starts."""
    params = {"name": check_text("name", name)}
    return _connections.run(conn, query("schedule_delete"), params, _deleted)
