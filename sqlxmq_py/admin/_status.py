"""One job's status and the errors of its failed attempts."""

from __future__ import annotations

import json
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, overload

from .. import _connections
from .._connections import AnyConnection, AsyncConnectionLike, Rows, SyncConnectionLike
from ..sql import query
from ..states import JobState, state_of
from ._ids import ids

__all__ = ["AttemptError", "JobStatus", "StatusRow", "attempt_errors", "job_status", "statuses"]


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
    (checked,) = ids([job_id])
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
    r = StatusRow(*row)
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
    (checked,) = ids([job_id])
    return _connections.run(conn, query("status"), {"id": checked}, _first_status)


def statuses(rows: Rows) -> list[JobStatus]:
    return [_status(row) for row in rows]
