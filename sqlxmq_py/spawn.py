"""Spawning and managing jobs from application code, on the application's connection.

Each function takes a sync connection or pool (and returns its result) or an async connection or
pool (and returns an awaitable), runs in the caller's transaction and never commits it.
"""

from __future__ import annotations

import uuid
from collections.abc import Coroutine, Iterable, Sequence
from contextlib import nullcontext
from typing import Any, TypeVar, overload

import psycopg
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from . import _connections
from ._connections import (
    AnyConnection,
    AsyncConnectionLike,
    Rows,
    SyncConnectionLike,
    is_async,
    schema_missing,
)
from ._insert import (
    COPY_JOB_TYPES,
    COPY_PAYLOAD_TYPES,
    CopyRows,
    copy_rows,
    copy_rows_like,
    insert_statement,
    jobs_like,
)
from ._validate import Duration, check_text
from .builder import SPAWN_HOOKS, JobBuilder
from .errors import ConfigurationError
from .job import NamedJob
from .payload import encode_json
from .sql import query

__all__ = ["clear", "clear_all", "commit", "exists", "spawn_many", "spawn_payloads"]

T = TypeVar("T")


def _count(rows: Rows) -> int:
    ((count,),) = rows
    return int(count)


def _first_bool(rows: Rows) -> bool:
    ((found,),) = rows
    return bool(found)


@overload
def spawn_many(conn: SyncConnectionLike, builders: Iterable[JobBuilder]) -> list[uuid.UUID]: ...


@overload
def spawn_many(
    conn: AsyncConnectionLike, builders: Iterable[JobBuilder]
) -> Coroutine[Any, Any, list[uuid.UUID]]: ...


def spawn_many(
    conn: AnyConnection, builders: Iterable[JobBuilder]
) -> list[uuid.UUID] | Coroutine[Any, Any, list[uuid.UUID]]:
    """Spawns many jobs in one round trip and returns their ids, in the builders' order.

    Ordered jobs of one channel group are chained in the order given. Batches of at least
    ``COPY_MIN_JOBS`` (1,000) plain jobs that may run at once are written with ``COPY``.
    """
    batch = list(builders)
    if not all(isinstance(b, JobBuilder) for b in batch):
        raise ConfigurationError("spawn_many takes JobBuilder objects, from NamedJob.builder()")
    if not batch:
        return _connections.run(conn, b"SELECT 1", None, lambda _rows: [])
    SPAWN_HOOKS.run(batch)
    jobs = [b.to_write() for b in batch]
    rows = copy_rows(jobs)
    if rows is not None:
        return _copy_async(conn, rows) if is_async(conn) else _copy_sync(conn, rows)
    statement, params, interpret = insert_statement(jobs)
    return _connections.run(conn, statement, params, interpret)


@overload
def spawn_payloads(
    conn: SyncConnectionLike,
    job: NamedJob[..., Any, T],
    payloads: Iterable[T],
    *,
    channel_name: str | None = None,
    channel_args: str | None = None,
    priority: int | None = None,
    delay: Duration | None = None,
) -> list[uuid.UUID]: ...


@overload
def spawn_payloads(
    conn: AsyncConnectionLike,
    job: NamedJob[..., Any, T],
    payloads: Iterable[T],
    *,
    channel_name: str | None = None,
    channel_args: str | None = None,
    priority: int | None = None,
    delay: Duration | None = None,
) -> Coroutine[Any, Any, list[uuid.UUID]]: ...


def spawn_payloads(
    conn: AnyConnection,
    job: NamedJob[..., Any, T],
    payloads: Iterable[T],
    *,
    channel_name: str | None = None,
    channel_args: str | None = None,
    priority: int | None = None,
    delay: Duration | None = None,
) -> list[uuid.UUID] | Coroutine[Any, Any, list[uuid.UUID]]:
    """Spawns one ``job`` per payload, without a builder per job, and returns their ids in
    the payloads' order: the fast way to enqueue many payloads of one job.

    Every job takes the job's ``@job`` defaults and the options given here (validated once);
    each payload is encoded as :meth:`JobBuilder.set_json` would (a typed job's declared type).
    The spawn hooks run once, on the template builder, so every job gets the same headers.
    Like :func:`spawn_many`: one round trip in the caller's transaction, and ``COPY`` from
    ``COPY_MIN_JOBS`` jobs that may run at once (no delay).

    Raises:
        PayloadError: a payload cannot be encoded (nothing is spawned).
    """
    if not isinstance(job, NamedJob):
        raise ConfigurationError(f"spawn_payloads takes a job (@job), got {job!r}")
    template = job.builder()
    if channel_name is not None:
        template.set_channel_name(channel_name)
    if channel_args is not None:
        template.set_channel_args(channel_args)
    if priority is not None:
        template.set_priority(priority)
    if delay is not None:
        template.set_delay(delay)
    SPAWN_HOOKS.run((template,))
    codec = template.payload_codec
    encoded = (
        [encode_json(p) for p in payloads] if codec is None else list(map(codec.encode, payloads))
    )
    if not encoded:
        return _connections.run(conn, b"SELECT 1", None, lambda _rows: [])
    base = template.to_write()
    rows = copy_rows_like(base, encoded)
    if rows is not None:
        return _copy_async(conn, rows) if is_async(conn) else _copy_sync(conn, rows)
    statement, params, interpret = insert_statement(jobs_like(base, encoded))
    return _connections.run(conn, statement, params, interpret)


def _copy_sync(conn: SyncConnectionLike, rows: CopyRows) -> list[uuid.UUID]:
    if isinstance(conn, ConnectionPool):
        with conn.connection() as pooled:
            return _copy_sync(pooled, rows)
    try:
        return _copy_into_sync(conn, rows)
    except psycopg.Error as exc:
        friendly = schema_missing(exc)
        if friendly is not None:
            raise friendly from exc
        raise


def _copy_into_sync(conn: psycopg.Connection[Any], rows: CopyRows) -> list[uuid.UUID]:
    # an autocommit connection gets a transaction of its own, so that the three statements
    # land together; otherwise they join the caller's, which is not committed here
    with conn.transaction() if conn.autocommit else nullcontext(), conn.cursor() as cur:
        with cur.copy(query("copy_payloads")) as copy:
            copy.set_types(COPY_PAYLOAD_TYPES)
            for row in rows.payloads:
                copy.write_row(row)
        with cur.copy(query("copy_jobs")) as copy:
            copy.set_types(COPY_JOB_TYPES)
            for row in rows.jobs:
                copy.write_row(row)
        cur.execute(query("wake"), {"channel_names": rows.channel_names})
    return rows.ids


async def _copy_async(conn: AsyncConnectionLike, rows: CopyRows) -> list[uuid.UUID]:
    if isinstance(conn, AsyncConnectionPool):
        async with conn.connection() as pooled:
            return await _copy_async(pooled, rows)
    try:
        return await _copy_into_async(conn, rows)
    except psycopg.Error as exc:
        friendly = schema_missing(exc)
        if friendly is not None:
            raise friendly from exc
        raise


async def _copy_into_async(conn: psycopg.AsyncConnection[Any], rows: CopyRows) -> list[uuid.UUID]:
    async with (
        conn.transaction() if conn.autocommit else nullcontext(),
        conn.cursor() as cur,
    ):
        async with cur.copy(query("copy_payloads")) as copy:
            copy.set_types(COPY_PAYLOAD_TYPES)
            for row in rows.payloads:
                await copy.write_row(row)
        async with cur.copy(query("copy_jobs")) as copy:
            copy.set_types(COPY_JOB_TYPES)
            for row in rows.jobs:
                await copy.write_row(row)
        await cur.execute(query("wake"), {"channel_names": rows.channel_names})
    return rows.ids


def _ids(job_ids: Iterable[uuid.UUID]) -> list[uuid.UUID]:
    ids = list(job_ids)
    for job_id in ids:
        if not isinstance(job_id, uuid.UUID):
            raise ConfigurationError(f"job ids must be uuid.UUID, got {job_id!r}")
    return ids


@overload
def commit(conn: SyncConnectionLike, job_ids: Iterable[uuid.UUID]) -> None: ...


@overload
def commit(
    conn: AsyncConnectionLike, job_ids: Iterable[uuid.UUID]
) -> Coroutine[Any, Any, None]: ...


def commit(conn: AnyConnection, job_ids: Iterable[uuid.UUID]) -> Coroutine[Any, Any, None] | None:
    """Commits jobs spawned with ``set_commit_interval``: they may run from now on.

    Jobs that are already committed, or were discarded, are left alone.
    """
    return _connections.run(conn, query("commit"), {"ids": _ids(job_ids)}, lambda _rows: None)


@overload
def clear(conn: SyncConnectionLike, channel_names: Sequence[str]) -> int: ...


@overload
def clear(conn: AsyncConnectionLike, channel_names: Sequence[str]) -> Coroutine[Any, Any, int]: ...


def clear(conn: AnyConnection, channel_names: Sequence[str]) -> int | Coroutine[Any, Any, int]:
    """Deletes every job (whatever its state) of these channels; returns how many."""
    if isinstance(channel_names, str):
        raise ConfigurationError("channel_names must be a list of names, not one str")
    names = [check_text("channel_names", name) for name in channel_names]
    return _connections.run(conn, query("clear"), {"channel_names": names}, _count)


@overload
def clear_all(conn: SyncConnectionLike) -> int: ...


@overload
def clear_all(conn: AsyncConnectionLike) -> Coroutine[Any, Any, int]: ...


def clear_all(conn: AnyConnection) -> int | Coroutine[Any, Any, int]:
    """Deletes every job of every channel; returns how many."""
    return _connections.run(conn, query("clear_all"), None, _count)


@overload
def exists(conn: SyncConnectionLike, job_id: uuid.UUID) -> bool: ...


@overload
def exists(conn: AsyncConnectionLike, job_id: uuid.UUID) -> Coroutine[Any, Any, bool]: ...


def exists(conn: AnyConnection, job_id: uuid.UUID) -> bool | Coroutine[Any, Any, bool]:
    """Whether the job is still in the queue (not yet completed, cleared or discarded)."""
    (checked,) = _ids([job_id])
    return _connections.run(conn, query("exists"), {"id": checked}, _first_bool)
