"""Reading from a replica: with ``create_app(..., read_conninfo=...)`` every read (a ``GET`` or
``HEAD`` request: pages, the API's reads, ``/metrics``) goes to a second pool, typically on a
streaming replica, while the changes (``POST``) go to the primary. Reads never write (the
dashboard's robustness tests hold it to that), so a read-only server serves them all.

Each page says how fresh what it shows is: whether the server it read from is a replica, whether
it has replayed all it received, and how old the last change it replayed is."""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from psycopg_pool import AsyncConnectionPool
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["READING", "STATE", "ReadingRequests", "ReplicaState", "replica_state"]

READING: contextvars.ContextVar[bool] = contextvars.ContextVar("sqlxmq_reading", default=False)
"""True while a request that only reads is handled: the app's pool holder then hands out its
read pool."""

STATE: contextvars.ContextVar[ReplicaState | None] = contextvars.ContextVar(
    "sqlxmq_replica_state", default=None
)
"""What the page being rendered read from (set for pages when there is a read pool)."""

_STATE_SQL = """
SELECT pg_is_in_recovery(),
    pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn(),
    extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8
"""


@dataclass(frozen=True)
class ReplicaState:
    """How fresh the read server is."""

    replica: bool
    """The server is in recovery (a standby); False: the read DSN names a primary."""
    caught_up: bool
    """It has replayed all the WAL it has received."""
    last_replayed_s: float | None
    """Seconds since the last transaction it replayed committed on the primary (None: none
    replayed since it started). On an idle primary this grows although nothing is missing."""

    def describe(self) -> str:
        """One line for the page's header."""
        if not self.replica:
            return "Read from the read-only connection, which is not a replica: current."
        age = (
            "no change replayed since it started"
            if self.last_replayed_s is None
            else f"last change replayed was made {self.last_replayed_s:.0f} s ago"
        )
        state = "caught up with what it received" if self.caught_up else "still replaying"
        return f"Read from a replica ({state}; {age})."


async def replica_state(pool: AsyncConnectionPool[Any]) -> ReplicaState:
    """Reads the state of the server behind ``pool``."""
    async with pool.connection() as conn:
        cur = await conn.execute(_STATE_SQL)
        row = await cur.fetchone()
    assert row is not None
    return ReplicaState(replica=bool(row[0]), caught_up=bool(row[1]), last_replayed_s=row[2])


class ReadingRequests:
    """Marks ``GET`` and ``HEAD`` requests as reads (:data:`READING`), so that they are served
    from the read pool, and for a page, reads first how fresh that pool's server is
    (:data:`STATE`, shown in the page's header)."""

    def __init__(
        self, app: ASGIApp, reads: Callable[[], Awaitable[AsyncConnectionPool[Any]]]
    ) -> None:
        self.app = app
        self._reads = reads

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        reading = READING.set(True)
        state = STATE.set(None)
        try:
            path = str(scope.get("path", ""))
            if not path.startswith(("/api/", "/static/", "/metrics")):
                try:
                    STATE.set(await replica_state(await self._reads()))
                except Exception:  # the page says so itself when the server is unreachable
                    STATE.set(None)
            await self.app(scope, receive, send)
        finally:
            STATE.reset(state)
            READING.reset(reading)
