"""A runner's own autocommit connection that reconnects, with backoff, when it is lost."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import psycopg
from psycopg.pq import ExecStatus
from psycopg.rows import tuple_row
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    wait_exponential,
    wait_random,
)

from .._connections import Rows
from .._logging import logger
from ._health import ConnectionHealth

__all__ = ["RECONNECT_WAIT", "DedicatedConnection", "connect_kwargs", "is_transient"]

T = TypeVar("T")

TUPLES_OK = ExecStatus.TUPLES_OK

RECONNECT_WAIT = wait_exponential(multiplier=0.05, max=5.0) + wait_random(0, 0.2)
"""Backoff between reconnection attempts: 50 ms doubling to 5 s, with jitter."""


def connect_kwargs(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Connection arguments for a runner connection: the pool's (``prepare_threshold``
    included), in autocommit, with tuple rows."""
    own = {k: v for k, v in kwargs.items() if k not in ("autocommit", "row_factory")}
    return {**own, "autocommit": True}


READ_ONLY = "25006"
"""SQLSTATE read_only_sql_transaction: the server is a standby (after a failover) or the
database is read-only; a new connection may reach the new primary."""


PROTOCOL_VIOLATION = "08P01"
"""SQLSTATE protocol_violation: what the client sent broke the protocol (or a pooler's rules,
as PgBouncer's for prepared statements it cannot track): retrying sends the same."""


def is_transient(exc: BaseException) -> bool:
    """Whether a failed statement may succeed on retry: the connection broke or was refused,
    the server is shutting down or starting, out of connections, read-only (a failover), the
    statement timed out, or its transaction was rolled back by a deadlock or a serialization
    failure. A bad password, an unknown database or a malformed statement is not."""
    if not isinstance(exc, psycopg.Error):
        return False
    state = exc.sqlstate
    if state == READ_ONLY:
        return True
    if not isinstance(exc, psycopg.OperationalError):
        return False
    return (
        state is None  # raised by the client: refused, closed, broken
        # connection (but a protocol violation: the same bytes would violate it again),
        # resources, rolled back
        or (state.startswith(("08", "53", "40")) and state != PROTOCOL_VIOLATION)
        or state in ("57P01", "57P02", "57P03", "57014")  # shutdowns, starting, timed out
    )


class DedicatedConnection:
    """One autocommit connection used by one part of the runner.

    A statement that fails transiently (see :func:`is_transient`) is retried, on a new
    connection if the old one broke, until it succeeds or the runner closes this connection.
    Other errors are raised at once.
    """

    def __init__(
        self, conninfo: str, kwargs: Mapping[str, Any], role: str, closing: Callable[[], bool]
    ) -> None:
        """Prepares (does not open) a connection for ``role`` (a name used in log events)."""
        self._conninfo = conninfo
        self._kwargs = connect_kwargs(kwargs)
        self._role = role
        self._closing = closing
        self._conn: psycopg.AsyncConnection[tuple[Any, ...]] | None = None
        self._connecting = asyncio.Lock()
        self._health = ConnectionHealth()

    async def _connection(self) -> psycopg.AsyncConnection[tuple[Any, ...]]:
        # tasks sharing this connection (the lease loop and maintenance, say) must not each
        # open a replacement when it breaks
        async with self._connecting:
            if self._conn is None or self._conn.closed:
                self._conn = await psycopg.AsyncConnection.connect(
                    self._conninfo, row_factory=tuple_row, **self._kwargs
                )
            return self._conn

    def _give_up(self, state: RetryCallState) -> bool:
        return self._closing()

    def _before_sleep(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        self._report(exc, retry_in_s=state.upcoming_sleep, attempt=state.attempt_number)

    def _report(self, exc: BaseException | None, *, retry_in_s: float, attempt: int) -> None:
        read_only = isinstance(exc, psycopg.Error) and exc.sqlstate == READ_ONLY
        # a read-only spell's connection was closed on purpose (see run()): not "lost"
        event, level = self._health.retrying(read_only=read_only, connected=self._conn is not None)
        getattr(logger, level)(
            event,
            role=self._role,
            error=str(exc).strip(),
            retry_in_s=round(retry_in_s, 3),
            attempt=attempt,
        )

    async def run(
        self,
        work: Callable[[psycopg.AsyncConnection[tuple[Any, ...]]], Awaitable[T]],
        *,
        writes: bool = True,
    ) -> T:
        """Runs ``work`` on the connection; transient failures are retried with backoff. Work
        that only reads (``writes`` False) succeeding on a read-only database does not end a
        read-only spell."""
        if self._health.failing is None:
            # the common case, without building a retrying state per statement: a transient
            # failure is tried once more at once, then with backoff and a log line per retry
            try:
                return await self._once(work, writes)
            except Exception as exc:
                if not is_transient(exc) or self._closing():
                    raise
                self._report(exc, retry_in_s=0.0, attempt=1)
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(is_transient),
            wait=RECONNECT_WAIT,
            stop=self._give_up,
            before_sleep=self._before_sleep,
            reraise=True,
        ):
            with attempt:
                return await self._once(work, writes)
        raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover

    async def _once(
        self,
        work: Callable[[psycopg.AsyncConnection[tuple[Any, ...]]], Awaitable[T]],
        writes: bool,
    ) -> T:
        conn = await self._connection()
        try:
            result = await work(conn)
        except psycopg.Error as exc:
            if exc.sqlstate == READ_ONLY and self._conn is conn:
                # after a failover the next connection may reach the new primary
                await conn.close()
            if (conn.broken or conn.closed) and self._conn is conn:
                self._conn = None
            raise
        if self._health.succeeded(writes=writes):
            logger.info("connection_restored", role=self._role)
        return result

    async def execute(
        self, query: bytes, params: Mapping[str, object] | None = None, *, writes: bool = True
    ) -> Rows:
        """Runs one statement (its own transaction) and returns its rows (see :meth:`run`)."""

        async def statement(conn: psycopg.AsyncConnection[tuple[Any, ...]]) -> Rows:
            cur = await conn.execute(query, params)
            # the result's status, not cur.description, which builds a Column per field
            result = cur.pgresult
            return await cur.fetchall() if result and result.status == TUPLES_OK else []

        return await self.run(statement, writes=writes)

    async def close(self) -> None:
        """Closes the connection (a later ``execute`` would open a new one)."""
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
