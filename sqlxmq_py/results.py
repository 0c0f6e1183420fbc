"""Waiting for a job's result: woken by a notification, with a status re-read as fallback.

``wait_for_result`` registers interest in the job (so its completion notifies ``mq_done`` and
keeps its result for at least an hour), listens on ``mq_done``, and reads the job's status
whenever a notification for it arrives. Notifications can fail to arrive (a transaction pooler,
a listener that dropped them), so it also re-reads the status on a backoff (50 ms, doubling to
1 s): a finished job is returned within about a second even when nothing is heard.

Behind a pooler or proxy (see :mod:`sqlxmq_py._pooler`) it does not LISTEN at all and only
polls: in transaction mode a LISTEN registers on whichever server session the pooler lends for
that one statement, never hears anything on the client's side, and stays registered on that
session after the wait (its UNLISTEN runs on another), so the pooler then drops, or hands to
unrelated clients, every ``mq_done`` notification. There, the status reads also run unprepared
(``prepare_threshold`` None for the duration of the wait): the next read may run on another
server session, where a statement psycopg prepared does not exist.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any, overload

import psycopg
from psycopg.rows import tuple_row
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from ._aio import redeliver_cancellation
from ._connections import AnyConnection, AsyncConnectionLike, SyncConnectionLike, is_async
from ._pooler import behind_pooler, behind_pooler_sync
from .admin import JobStatus, job_status
from .errors import ConfigurationError, JobCancelledError, JobFailedError, JobNotFoundError
from .sql import query

__all__ = ["POLL_FIRST", "POLL_MAX", "RESULT_RETENTION", "next_poll_delay", "wait_for_result"]

RESULT_RETENTION = timedelta(hours=1)
"""A job someone waits for is kept at least this long after it finishes, with its result."""

POLL_FIRST = 0.05
POLL_MAX = 1.0
"""While waiting, the job's status is re-read after 50 ms, then after twice as long each time
up to 1 s, whether or not a notification came."""


def next_poll_delay(previous: float | None) -> float:
    """Seconds until the next re-read of the job's status, after waiting ``previous`` seconds
    before this one (None: the first read has just been made)."""
    if previous is None:
        return POLL_FIRST
    return min(previous * 2, POLL_MAX)


def _outcome(job_id: uuid.UUID, status: JobStatus | None) -> tuple[bool, Any]:
    """(finished, result) for a status, raising for jobs that will never give one."""
    if status is None:
        raise JobNotFoundError(
            f"job {job_id} is neither queued nor kept in the history (it may have completed "
            "without retain_for before anyone waited for it)"
        )
    if status.state == "completed":
        return True, status.result
    if status.state == "failed":
        raise JobFailedError(f"job {job_id} ({status.name!r}) failed: {status.last_error}")
    if status.state == "cancelled":
        raise JobCancelledError(
            f"job {job_id} ({status.name!r}) was cancelled: {status.last_error}"
        )
    return False, None


def _remaining(deadline: float | None, job_id: uuid.UUID) -> float | None:
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError(f"job {job_id} did not finish in time")
    return left


def _next_wait(deadline: float | None, delay: float, job_id: uuid.UUID) -> float:
    """How long to wait for a notification before re-reading the status: ``delay``, or less
    if the deadline comes first (raises TimeoutError once it has passed)."""
    left = _remaining(deadline, job_id)
    return delay if left is None else min(delay, left)


def _register_params(job_id: uuid.UUID) -> dict[str, object]:
    return {"id": job_id, "retain": RESULT_RETENTION}


def _check_source(conn: AnyConnection) -> None:
    if isinstance(conn, psycopg.Connection | psycopg.AsyncConnection) and not conn.autocommit:
        raise ConfigurationError(
            "wait_for_result needs a pool, or a connection in autocommit mode (notifications "
            "arrive between transactions)"
        )


def _wait_sync(conn: psycopg.Connection[Any], job_id: uuid.UUID, timeout: float | None) -> Any:
    deadline = None if timeout is None else time.monotonic() + timeout
    listening = not behind_pooler_sync(conn)
    threshold = conn.prepare_threshold
    if listening:
        conn.execute(query("listen_done"))
    else:
        conn.prepare_threshold = None
    try:
        with conn.cursor(row_factory=tuple_row) as cur:
            cur.execute(query("wait_register"), _register_params(job_id))
        delay = None
        while True:
            finished, result = _outcome(job_id, job_status(conn, job_id))
            if finished:
                return result
            delay = next_poll_delay(delay)
            wait = _next_wait(deadline, delay, job_id)
            if not listening:
                time.sleep(wait)
                continue
            for note in conn.notifies(timeout=wait):
                if note.payload == str(job_id):
                    break
    finally:
        conn.prepare_threshold = threshold
        # a wait interrupted mid-statement may have closed the connection
        if listening and not conn.closed:
            conn.execute(query("unlisten_done"))


async def _wait_async(
    conn: psycopg.AsyncConnection[Any], job_id: uuid.UUID, timeout: float | None
) -> Any:
    deadline = None if timeout is None else time.monotonic() + timeout
    listening = not await behind_pooler(conn)
    threshold = conn.prepare_threshold
    if listening:
        await conn.execute(query("listen_done"))
    else:
        conn.prepare_threshold = None
    try:
        async with conn.cursor(row_factory=tuple_row) as cur:
            await cur.execute(query("wait_register"), _register_params(job_id))
        delay = None
        while True:
            redeliver_cancellation()
            finished, result = _outcome(job_id, await job_status(conn, job_id))
            if finished:
                return result
            delay = next_poll_delay(delay)
            wait = _next_wait(deadline, delay, job_id)
            if not listening:
                await asyncio.sleep(wait)
                continue
            async for note in conn.notifies(timeout=wait):
                if note.payload == str(job_id):
                    break
    finally:
        conn.prepare_threshold = threshold
        # a cancelled wait may have closed the connection: keep the cancellation
        if listening and not conn.closed:
            await conn.execute(query("unlisten_done"))


async def _wait_async_any(
    conn: AsyncConnectionLike, job_id: uuid.UUID, timeout: float | None
) -> Any:
    if isinstance(conn, AsyncConnectionPool):
        async with conn.connection() as pooled:
            redeliver_cancellation()  # one swallowed while waiting for the connection
            await pooled.set_autocommit(True)
            try:
                return await _wait_async(pooled, job_id, timeout)
            finally:
                if not pooled.closed:
                    await pooled.set_autocommit(False)
    return await _wait_async(conn, job_id, timeout)


def _wait_sync_any(conn: SyncConnectionLike, job_id: uuid.UUID, timeout: float | None) -> Any:
    if isinstance(conn, ConnectionPool):
        with conn.connection() as pooled:
            pooled.autocommit = True
            try:
                return _wait_sync(pooled, job_id, timeout)
            finally:
                if not pooled.closed:
                    pooled.autocommit = False
    return _wait_sync(conn, job_id, timeout)


@overload
def wait_for_result(
    conn: SyncConnectionLike, job_id: uuid.UUID, timeout: float | None = None
) -> Any: ...


@overload
def wait_for_result(
    conn: AsyncConnectionLike, job_id: uuid.UUID, timeout: float | None = None
) -> Coroutine[Any, Any, Any]: ...


def wait_for_result(
    conn: AnyConnection, job_id: uuid.UUID, timeout: float | None = None
) -> Any | Coroutine[Any, Any, Any]:
    """Waits until the job finishes and returns its result (the job function's return value,
    decoded from JSON), woken by a notification, and re-reading the job's status every second
    at most in case none comes (behind a pooler or proxy it only re-reads: see the module).

    ``conn`` is a pool or an autocommit connection, sync or async. The job is kept (with its
    result) for at least :data:`RESULT_RETENTION` after it finishes.

    Raises:
        JobFailedError: the job failed for good.
        JobCancelledError: the job was cancelled.
        JobNotFoundError: no such job is queued or kept.
        TimeoutError: ``timeout`` seconds passed first.
    """
    if not isinstance(job_id, uuid.UUID):
        raise ConfigurationError(f"job_id must be a uuid.UUID, got {job_id!r}")
    _check_source(conn)
    if is_async(conn):
        return _wait_async_any(conn, job_id, timeout)
    return _wait_sync_any(conn, job_id, timeout)
