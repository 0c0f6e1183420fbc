"""Acting on jobs: cancel, retry and reschedule."""

from __future__ import annotations

import uuid
from collections.abc import Coroutine, Iterable
from datetime import datetime
from typing import Any, overload

from .. import _connections
from .._connections import AnyConnection, AsyncConnectionLike, Rows, SyncConnectionLike
from .._validate import check_int, check_text
from ..errors import ConfigurationError
from ..sql import query
from ._ids import ids

__all__ = ["cancel", "reschedule", "retry"]


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
    params = {"ids": ids(job_ids), "reason": check_text("reason", reason)}
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
    return _connections.run(conn, query("retry"), {"ids": ids(job_ids)}, _id_list)


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
        "ids": ids(job_ids),
        "run_at": run_at,
        "priority": None
        if priority is None
        else check_int("priority", priority, minimum=-(2**31 - 1)),
        "retries": None
        if retries is None
        else check_int("retries", retries, minimum=0, maximum=2**31 - 2),
    }
    return _connections.run(conn, query("reschedule"), params, _id_list)
