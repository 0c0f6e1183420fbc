"""The I/O half of batches: the usual spawn statement and ``batch_link`` sent together in one
pipeline (one round trip), on the caller's connection and in the caller's transaction."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from contextlib import nullcontext
from typing import Any, TypeVar, overload

import psycopg
from psycopg.rows import tuple_row
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from . import _connections
from ._batch_spec import BatchStatus, Prepared, batch_error, read_status
from ._connections import (
    AnyConnection,
    AsyncConnectionLike,
    Rows,
    SyncConnectionLike,
    is_async,
    schema_missing,
)
from ._insert import insert_statement
from .builder import SPAWN_HOOKS
from .sql import query

__all__ = ["link_async", "link_sync", "run_checked", "translate"]

T = TypeVar("T")
Params = Mapping[str, object]


def translate(exc: psycopg.Error) -> Exception | None:
    """The library's error for a failed batch statement (a refusal, a missing schema)."""
    return batch_error(exc) or schema_missing(exc)


def link_sync(
    conn: SyncConnectionLike, prepared: Prepared, params: dict[str, object]
) -> BatchStatus:
    """Spawns the prepared jobs and links them to their batch; returns the batch's counts."""
    if isinstance(conn, ConnectionPool):
        with conn.connection() as pooled:
            return link_sync(pooled, prepared, params)
    SPAWN_HOOKS.run(prepared.builders)
    statement, insert_params, _ = insert_statement([b.to_write() for b in prepared.builders])
    try:
        # an autocommit connection gets a transaction of its own, so that the jobs and their
        # links land together; otherwise they join the caller's, which is not committed here
        with (
            conn.transaction() if conn.autocommit else nullcontext(),
            conn.cursor(row_factory=tuple_row) as spawn,
            conn.cursor(row_factory=tuple_row) as link,
        ):
            with conn.pipeline():
                spawn.execute(statement, insert_params)
                link.execute(query("batch_link"), params)
            rows = link.fetchall()
    except psycopg.Error as exc:
        friendly = translate(exc)
        if friendly is not None:
            raise friendly from exc
        raise
    status = read_status(rows)
    assert status is not None  # batch_link returns the batch or raises
    return status


async def link_async(
    conn: AsyncConnectionLike, prepared: Prepared, params: dict[str, object]
) -> BatchStatus:
    """The async twin of :func:`link_sync`."""
    if isinstance(conn, AsyncConnectionPool):
        async with conn.connection() as pooled:
            return await link_async(pooled, prepared, params)
    SPAWN_HOOKS.run(prepared.builders)
    statement, insert_params, _ = insert_statement([b.to_write() for b in prepared.builders])
    try:
        async with (
            conn.transaction() if conn.autocommit else nullcontext(),
            conn.cursor(row_factory=tuple_row) as spawn,
            conn.cursor(row_factory=tuple_row) as link,
        ):
            async with conn.pipeline():
                await spawn.execute(statement, insert_params)
                await link.execute(query("batch_link"), params)
            rows = await link.fetchall()
    except psycopg.Error as exc:
        friendly = translate(exc)
        if friendly is not None:
            raise friendly from exc
        raise
    status = read_status(rows)
    assert status is not None
    return status


async def _run_async(
    conn: AsyncConnectionLike, statement: bytes, params: Params, interpret: Callable[[Rows], T]
) -> T:
    try:
        return await _connections.run(conn, statement, params, interpret)
    except psycopg.Error as exc:
        friendly = translate(exc)
        if friendly is not None:
            raise friendly from exc
        raise


@overload
def run_checked(
    conn: SyncConnectionLike, statement: bytes, params: Params, interpret: Callable[[Rows], T]
) -> T: ...


@overload
def run_checked(
    conn: AsyncConnectionLike, statement: bytes, params: Params, interpret: Callable[[Rows], T]
) -> Coroutine[Any, Any, T]: ...


def run_checked(
    conn: AnyConnection, statement: bytes, params: Params, interpret: Callable[[Rows], T]
) -> T | Coroutine[Any, Any, T]:
    """Runs one batch statement (see ``_connections.run``), turning its refusals into the
    typed errors of ``sqlxmq_py.batch``."""
    if is_async(conn):
        return _run_async(conn, statement, params, interpret)
    try:
        return _connections.run(conn, statement, params, interpret)
    except psycopg.Error as exc:
        friendly = translate(exc)
        if friendly is not None:
            raise friendly from exc
        raise
