"""The thin I/O layer shared by every call that takes the application's connection.

A call accepts a sync ``psycopg.Connection`` or ``ConnectionPool`` (and returns its result) or an
async ``AsyncConnection`` or ``AsyncConnectionPool`` (and returns an awaitable). It runs on the
caller's connection, inside the caller's transaction, and never commits it; a pool lends a
connection for one transaction of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TypeAlias, TypeVar, overload

import psycopg
from psycopg.rows import tuple_row
from psycopg_pool import AsyncConnectionPool, ConnectionPool
from typing_extensions import TypeIs

from .errors import SchemaError

__all__ = [
    "AnyConnection",
    "AsyncConnectionLike",
    "Rows",
    "SyncConnectionLike",
    "is_async",
    "run",
]

SyncConnectionLike: TypeAlias = "psycopg.Connection[Any] | ConnectionPool[Any]"
AsyncConnectionLike: TypeAlias = "psycopg.AsyncConnection[Any] | AsyncConnectionPool[Any]"
AnyConnection: TypeAlias = "SyncConnectionLike | AsyncConnectionLike"
Rows: TypeAlias = list[tuple[Any, ...]]
Params: TypeAlias = Mapping[str, object]

T = TypeVar("T")


def is_async(conn: AnyConnection) -> TypeIs[AsyncConnectionLike]:
    """Whether ``conn`` is an asyncio connection or pool."""
    if isinstance(conn, psycopg.AsyncConnection | AsyncConnectionPool):
        return True
    if isinstance(conn, psycopg.Connection | ConnectionPool):
        return False
    raise TypeError(
        "expected a psycopg Connection, AsyncConnection, ConnectionPool or AsyncConnectionPool, "
        f"got {type(conn).__name__}"
    )


def schema_missing(exc: psycopg.Error) -> SchemaError | None:
    """The friendly error for a statement that failed because the sqlxmq_py schema is missing
    (or older than this version), else None."""
    if isinstance(exc, psycopg.errors.UndefinedTable | psycopg.errors.UndefinedFunction) and (
        "mq_" in str(exc)
    ):
        return SchemaError(
            "the database has no (or an outdated) sqlxmq_py schema: run "
            "sqlxmq_py.migrate(conn) (or `sqlxmq migrate`) first"
        )
    return None


def fetch_sync(
    conn: SyncConnectionLike,
    query: bytes,
    params: Params | None = None,
    *,
    prepare: bool | None = None,
) -> Rows:
    """Runs one statement on a sync connection (or a pool's) and returns its rows.

    ``prepare=False``: never as a server-side prepared statement (see :func:`run`).

    Raises:
        SchemaError: the database has no sqlxmq_py schema (the transaction is aborted).
    """
    if isinstance(conn, ConnectionPool):
        with conn.connection() as pooled:
            return fetch_sync(pooled, query, params, prepare=prepare)
    with conn.cursor(row_factory=tuple_row) as cur:
        try:
            cur.execute(query, params, prepare=prepare)
        except psycopg.Error as exc:
            friendly = schema_missing(exc)
            if friendly is not None:
                raise friendly from exc
            raise
        return cur.fetchall() if cur.description is not None else []


async def fetch_async(
    conn: AsyncConnectionLike,
    query: bytes,
    params: Params | None = None,
    *,
    prepare: bool | None = None,
) -> Rows:
    """Runs one statement on an async connection (or a pool's) and returns its rows."""
    if isinstance(conn, AsyncConnectionPool):
        async with conn.connection() as pooled:
            return await fetch_async(pooled, query, params, prepare=prepare)
    async with conn.cursor(row_factory=tuple_row) as cur:
        try:
            await cur.execute(query, params, prepare=prepare)
        except psycopg.Error as exc:
            friendly = schema_missing(exc)
            if friendly is not None:
                raise friendly from exc
            raise
        return await cur.fetchall() if cur.description is not None else []


async def _run_async(
    conn: AsyncConnectionLike,
    query: bytes,
    params: Params | None,
    interpret: Callable[[Rows], T],
    prepare: bool | None,
) -> T:
    return interpret(await fetch_async(conn, query, params, prepare=prepare))


@overload
def run(
    conn: SyncConnectionLike,
    query: bytes,
    params: Params | None,
    interpret: Callable[[Rows], T],
    *,
    prepare: bool | None = None,
) -> T: ...


@overload
def run(
    conn: AsyncConnectionLike,
    query: bytes,
    params: Params | None,
    interpret: Callable[[Rows], T],
    *,
    prepare: bool | None = None,
) -> Coroutine[Any, Any, T]: ...


def run(
    conn: AnyConnection,
    query: bytes,
    params: Params | None,
    interpret: Callable[[Rows], T],
    *,
    prepare: bool | None = None,
) -> T | Coroutine[Any, Any, T]:
    """Runs ``query`` on ``conn`` and hands the rows to the pure ``interpret``.

    Returns the result for a sync connection and a coroutine for an async one.

    ``prepare=False`` keeps psycopg from preparing the statement on the server after a few
    runs: the server then plans it with each call's values (a custom plan) instead of, perhaps,
    one generic plan for all values. Statements whose best index depends on the values (the
    admin reads) need that.
    """
    if is_async(conn):
        return _run_async(conn, query, params, interpret, prepare)
    return interpret(fetch_sync(conn, query, params, prepare=prepare))
