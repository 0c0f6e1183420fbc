"""The pull API, for consumers without a runner (pg-boss style): fetch jobs, then complete or
fail them, on your own connection and in your own transactions.

Fetching leases the jobs like a runner does (same fairness, same lease fencing): complete or
fail each one before its lease expires, or it becomes ready again (each fetch first returns
expired leases to the queue, so this works with no runner at all). Pull consumers do not renew
leases and do not honour per-channel limits, but never fetch from a paused channel.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, overload

import psycopg
from psycopg.rows import tuple_row
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from . import _connections
from ._connections import AnyConnection, AsyncConnectionLike, Rows, SyncConnectionLike, is_async
from ._text import clean_text, error_summary
from ._validate import Duration, check_int, check_text, to_timedelta
from .backoff import retry_delay
from .errors import ConfigurationError, LeaseLostError
from .payload import decode_json, encode_result
from .sql import query

__all__ = ["FetchedJob", "complete", "fail", "fetch"]

_cursors: dict[tuple[str, ...] | None, tuple[str, str]] = {}
_cursors_lock = threading.Lock()

REPAIR_EVERY = 1.0
"""Seconds between two repair passes of this process's fetches (see :func:`fetch`)."""

_next_repair = 0.0


def _repair_due() -> bool:
    """Whether this fetch runs the repair pass (at most once every REPAIR_EVERY seconds)."""
    global _next_repair
    now = time.monotonic()
    with _cursors_lock:
        if now < _next_repair:
            return False
        _next_repair = now + REPAIR_EVERY
    return True


@dataclass(frozen=True, kw_only=True)
class FetchedJob:
    """A job leased by :func:`fetch`; pass it to :func:`complete` or :func:`fail`."""

    id: uuid.UUID
    token: uuid.UUID
    name: str
    attempt: int
    max_attempts: int
    channel_name: str
    channel_args: str
    lease: timedelta
    retry_backoff: timedelta
    job_key: str | None
    payload_json: str | None
    payload_bytes: bytes | None

    def json(self) -> Any:
        """The decoded JSON payload, or ``None``."""
        return decode_json(self.payload_json, job_name=self.name)

    def raw_json(self) -> str | None:
        """The JSON payload as stored."""
        return self.payload_json

    def raw_bytes(self) -> bytes | None:
        """The binary payload."""
        return self.payload_bytes


def _fetched(rows: Rows) -> list[FetchedJob]:
    return [
        FetchedJob(
            id=r[0],
            token=r[1],
            attempt=r[2],
            max_attempts=r[3],
            channel_name=r[4],
            channel_args=r[5],
            lease=r[6],
            name=r[7],
            payload_json=r[8],
            payload_bytes=r[9],
            retry_backoff=r[10],
            job_key=r[11],
        )
        for r in rows
    ]


def _lease_params(
    channel_names: Sequence[str] | None, limit: int, lease: timedelta
) -> dict[str, object]:
    key = None if channel_names is None else tuple(channel_names)
    with _cursors_lock:
        cursor_name, cursor_args = _cursors.get(key, (None, None))
    return {
        "channel_names": None if key is None else list(key),
        "cursor_name": cursor_name,
        "cursor_args": cursor_args,
        "limit": limit,
        "default_lease": lease,
        "durable": True,  # the caller's transaction commits as the caller decides
        "max_bytes": 2**62,
        "runner": None,  # taken by no runner: the caller's own code
    }


def _remember(channel_names: Sequence[str] | None, jobs: list[FetchedJob]) -> list[FetchedJob]:
    if jobs:
        with _cursors_lock:
            key = None if channel_names is None else tuple(channel_names)
            _cursors[key] = (jobs[-1].channel_name, jobs[-1].channel_args)
    return jobs


def _fetch_sync(
    conn: psycopg.Connection[Any], promote: dict[str, object], lease: dict[str, object]
) -> Rows:
    with conn.cursor(row_factory=tuple_row) as cur:
        cur.execute(query("expire_leases"))
        if _repair_due():
            cur.execute(query("repair"))
        cur.execute(query("promote"), promote)
        cur.execute(query("fetch_lease"), lease)
        return cur.fetchall()


async def _fetch_async(
    conn: AsyncConnectionLike, promote: dict[str, object], lease: dict[str, object]
) -> Rows:
    if isinstance(conn, AsyncConnectionPool):
        async with conn.connection() as pooled:
            return await _fetch_async(pooled, promote, lease)
    async with conn.cursor(row_factory=tuple_row) as cur:
        await cur.execute(query("expire_leases"))
        if _repair_due():
            await cur.execute(query("repair"))
        await cur.execute(query("promote"), promote)
        await cur.execute(query("fetch_lease"), lease)
        return await cur.fetchall()


async def _fetch_async_jobs(
    conn: AsyncConnectionLike,
    names: Sequence[str] | None,
    promote: dict[str, object],
    lease: dict[str, object],
) -> list[FetchedJob]:
    return _remember(names, _fetched(await _fetch_async(conn, promote, lease)))


@overload
def fetch(
    conn: SyncConnectionLike,
    channel_names: Sequence[str] | None = None,
    limit: int = 1,
    *,
    lease: Duration = 30,
) -> list[FetchedJob]: ...


@overload
def fetch(
    conn: AsyncConnectionLike,
    channel_names: Sequence[str] | None = None,
    limit: int = 1,
    *,
    lease: Duration = 30,
) -> Coroutine[Any, Any, list[FetchedJob]]: ...


def fetch(
    conn: AnyConnection,
    channel_names: Sequence[str] | None = None,
    limit: int = 1,
    *,
    lease: Duration = 30,
) -> list[FetchedJob] | Coroutine[Any, Any, list[FetchedJob]]:
    """Leases up to ``limit`` ready jobs of these channels (``None``: all) for ``lease``
    (jobs with their own lease keep it). The lease is taken in the caller's transaction.

    Each fetch first returns expired leases to the queue and makes due scheduled jobs ready;
    at most once a second per process it also runs the repairs a runner's maintenance runs
    (ordered chains and continuations left waiting by a race the database could not resolve
    in either transaction), so a deployment without runners needs no sweeper."""
    if isinstance(channel_names, str):
        raise ConfigurationError("channel_names must be a list of names, not one str")
    names = (
        None if channel_names is None else [check_text("channel_names", n) for n in channel_names]
    )
    params = _lease_params(
        names,
        check_int("limit", limit, minimum=1, maximum=10_000),
        to_timedelta("lease", lease, allow_zero=False),
    )
    promote: dict[str, object] = {"channel_names": names, "exclusive": False}
    if is_async(conn):
        return _fetch_async_jobs(conn, names, promote, params)
    if isinstance(conn, ConnectionPool):
        with conn.connection() as pooled:
            return _remember(names, _fetched(_fetch_sync(pooled, promote, params)))
    return _remember(names, _fetched(_fetch_sync(conn, promote, params)))


def _check_job(job: object) -> FetchedJob:
    if not isinstance(job, FetchedJob):
        raise ConfigurationError(f"expected a FetchedJob from fetch(), got {job!r}")
    return job


def _completed(job: FetchedJob) -> Any:
    def interpret(rows: Rows) -> None:
        if not any(outcome == "completed" for _, outcome in rows):
            raise LeaseLostError(f"cannot complete job {job.id} ({job.name!r}): its lease is gone")

    return interpret


@overload
def complete(
    conn: SyncConnectionLike, job: FetchedJob, result: object = None, *, retain_for: Duration = 0
) -> None: ...


@overload
def complete(
    conn: AsyncConnectionLike, job: FetchedJob, result: object = None, *, retain_for: Duration = 0
) -> Coroutine[Any, Any, None]: ...


def complete(
    conn: AnyConnection, job: FetchedJob, result: object = None, *, retain_for: Duration = 0
) -> Coroutine[Any, Any, None] | None:
    """Completes a fetched job (in the caller's transaction). Its ``result`` (JSON) is kept
    with it in the history when the job asks to be kept, or for ``retain_for``.

    Raises:
        LeaseLostError: the lease expired and the job may be running elsewhere.
    """
    checked = _check_job(job)
    params = {
        "ids": [checked.id],
        "tokens": [checked.token],
        "results": [encode_result(result)],
        "default_retain": to_timedelta("retain_for", retain_for),
        "wait": True,
    }
    return _connections.run(conn, query("complete"), params, _completed(checked))


def _failed(job: FetchedJob) -> Any:
    def interpret(rows: Rows) -> str:
        if not rows:
            raise LeaseLostError(f"cannot fail job {job.id} ({job.name!r}): its lease is gone")
        return {"f": "failed", "c": "cancelled"}.get(rows[0][1], "retrying")

    return interpret


@overload
def fail(
    conn: SyncConnectionLike,
    job: FetchedJob,
    error: str | BaseException,
    *,
    delay: Duration | None = None,
) -> str: ...


@overload
def fail(
    conn: AsyncConnectionLike,
    job: FetchedJob,
    error: str | BaseException,
    *,
    delay: Duration | None = None,
) -> Coroutine[Any, Any, str]: ...


def fail(
    conn: AnyConnection,
    job: FetchedJob,
    error: str | BaseException,
    *,
    delay: Duration | None = None,
) -> str | Coroutine[Any, Any, str]:
    """Records a failed attempt of a fetched job; returns ``"retrying"`` (it runs again after
    ``delay``, by default its exponential backoff), ``"failed"`` (no attempts left) or
    ``"cancelled"`` (someone asked to cancel it meanwhile).

    Raises:
        LeaseLostError: the lease expired and the job may be running elsewhere.
    """
    checked = _check_job(job)
    text = clean_text(error) if isinstance(error, str) else error_summary(error)
    wait = (
        retry_delay(checked.attempt, checked.retry_backoff)
        if delay is None
        else to_timedelta("delay", delay)
    )
    params = {
        "ids": [checked.id],
        "tokens": [checked.token],
        "delays": [wait],
        "errors": [text],
        "wait": True,
    }
    return _connections.run(conn, query("fail"), params, _failed(checked))
