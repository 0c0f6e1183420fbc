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

__all__ = [
    "AttemptError",
    "Interruptions",
    "JobStatus",
    "RateWait",
    "StatusRow",
    "attempt_errors",
    "interruptions",
    "job_status",
    "statuses",
]


@dataclass(frozen=True, kw_only=True)
class Interruptions:
    """How often a job's attempts were interrupted: handed back unfinished by a runner that was
    told to stop (a graceful deploy). Those attempts were not counted."""

    count: int
    """Interrupted attempts among the job's last 25 recorded attempt outcomes."""
    last_at: datetime
    last_by: str
    """The runner that handed it back, as ``host:pid`` (empty if it did not say)."""

    def __str__(self) -> str:
        times = "time" if self.count == 1 else "times"
        by = self.last_by or "an unknown runner"
        return f"interrupted {self.count} {times}, last at {self.last_at.isoformat()} by {by}"


def interruptions(errors_json: str | None) -> Interruptions | None:
    """The interruptions recorded in a job's errors list (JSON text), or None if none."""
    if not errors_json:
        return None
    marked = [e for e in json.loads(errors_json) if "interrupted" in e]
    if not marked:
        return None
    last = marked[-1]
    return Interruptions(
        count=len(marked),
        last_at=datetime.fromisoformat(last["at"]),
        last_by=str(last["interrupted"]),
    )


@dataclass(frozen=True, kw_only=True)
class RateWait:
    """A rate key of a job whose budget is spent now (see :mod:`sqlxmq_py.rate_limit`)."""

    key: str
    until: datetime
    """When the key allows a start again (its oldest counted start leaves the window)."""

    def __str__(self) -> str:
        return f"waits for rate key {self.key} until {self.until.isoformat()}"


def rate_waits(waits_json: str | None) -> tuple[RateWait, ...]:
    """The spent keys the ``status`` statement found (JSON text), by key."""
    if not waits_json:
        return ()
    return tuple(
        RateWait(key=str(w["key"]), until=datetime.fromisoformat(w["until"]))
        for w in json.loads(waits_json)
    )


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
    interrupted: Interruptions | None = None
    """Whether (and how often) a stopping runner handed the job back unfinished; only
    :func:`job_status` reads it (listed jobs leave it None)."""
    rate_keys: tuple[str, ...] = ()
    """The job's rate keys; only :func:`job_status` reads them (listed jobs leave them empty)."""
    rate_waits: tuple[RateWait, ...] = ()
    """Those of its rate keys whose budget is spent now, each with when it allows a start
    again: why a scheduled (deferred) or ready job with rate keys waits. Only
    :func:`job_status` reads them."""


@dataclass(frozen=True, kw_only=True)
class AttemptError:
    """How one failed attempt of a job ended."""

    attempt: int
    at: datetime
    error: str
    """The error's text (its first 4,000 characters; ``JobStatus.last_error`` has all of the
    last one)."""
    interrupted_by: str | None = None
    """Set when the attempt was not an error but was interrupted: the runner that handed it back
    (``host:pid``)."""


def _attempt_errors(rows: Rows) -> list[AttemptError]:
    if not rows or rows[0][0] is None:
        return []
    return [
        AttemptError(
            attempt=int(e["attempt"]),
            at=datetime.fromisoformat(e["at"]),
            error=str(e["error"]),
            interrupted_by=None if "interrupted" not in e else str(e["interrupted"]),
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
    kept; empty for a job that never failed or is gone. Interrupted attempts are listed too,
    with ``interrupted_by`` set."""
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
    """A row of ``status`` (which adds the errors list) or of ``list_jobs*``."""
    n = len(StatusRow._fields)
    r = StatusRow(*row[:n])
    # the status statement adds the errors, the rate keys and the spent keys
    errors, keys, waits = (*row[n : n + 3], None, None, None)[:3]
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
        interrupted=interruptions(errors),
        rate_keys=tuple(keys or ()),
        rate_waits=rate_waits(waits),
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
