"""A pool that lends one connection, inside a savepoint: what ``current_job.pool`` is when the
kit runs a job on a test's own connection, so that the job's writes land in the test's
transaction (and go with its rollback)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

__all__ = ["TransactionPool"]


class TransactionPool(AsyncConnectionPool[Any]):
    """An ``AsyncConnectionPool`` that never connects: ``connection()`` lends the one connection
    it wraps, inside a savepoint (a transaction of its own when the connection is not in one).

    As with a real pool, a block that ends normally keeps its writes (here: in the wrapped
    connection's transaction, not committed) and one that raises undoes them. It never opens,
    so there is nothing to close.
    """

    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Lends ``conn``.

        Args:
            conn: the test's connection, usually inside the transaction the test rolls back.
        """
        super().__init__(conn.info.dsn, open=False, min_size=1, max_size=1, name="sqlxmq-test")
        self._shared = conn

    @asynccontextmanager
    async def connection(
        self, timeout: float | None = None
    ) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """The wrapped connection, inside a savepoint released when the block ends normally and
        rolled back when it raises.

        Args:
            timeout: ignored (nothing is waited for).

        Returns:
            An async context manager yielding the wrapped connection.
        """
        async with self._shared.transaction():
            yield self._shared

    async def getconn(self, timeout: float | None = None) -> psycopg.AsyncConnection[Any]:
        """The wrapped connection itself, without a savepoint (prefer :meth:`connection`).

        Args:
            timeout: ignored.

        Returns:
            The wrapped connection.
        """
        return self._shared

    async def putconn(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Takes back what :meth:`getconn` lent: nothing to do.

        Args:
            conn: the connection :meth:`getconn` returned.

        Raises:
            ValueError: ``conn`` is not the wrapped connection.
        """
        if conn is not self._shared:
            raise ValueError("this connection does not belong to this pool")
