"""Connections that go through a pooler or proxy (PgBouncer, pgcat, Odyssey, RDS Proxy).

psycopg prepares a statement on the server once it has run it a few times (its
``prepare_threshold``). Behind a pooler in transaction mode the next transaction may run on
another server session, where that statement does not exist, or where another client's
statement holds its name. So sqlxmq_py's own connections and pools prepare nothing when they
find a pooler between them and PostgreSQL. (The runner's statements are functions whose plans
PostgreSQL caches per server session, so little is lost.)

The check, either of:

- the backend pid the client was given at connection (``conn.info.backend_pid``) is not the
  pid of the server session it talks to (``pg_backend_pid()``): a pooler hands its clients
  keys of its own (PgBouncer a random number), since it cannot give a server session's;
- the port the client connected to differs from the port the server listens on. A pooler
  listens on its own port (PgBouncer's default is 6432); so does a port mapping (Docker's
  ``-p 5433:5432``), which this takes for a pooler too: that only costs the prepared
  statements.

The pid catches a pooler on the server's port number (a PgBouncer on port 5432 of another
host); the port catches one that passes the server's pid on. Neither tells a pooler's session
mode from its transaction mode.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

__all__ = [
    "PoolerCheck",
    "behind_pooler",
    "behind_pooler_sync",
    "check_pooler",
    "prepare_unless_pooled",
    "through_pooler",
]


def through_pooler(
    client_port: object,
    server_port: object,
    client_pid: object = None,
    server_pid: object = None,
) -> bool:
    """Whether the port a client connected to differs from the port the server listens on, or
    the backend pid the client was given differs from its server session's (None: unknown)."""
    if client_pid is not None and server_pid is not None and client_pid != server_pid:
        return True
    try:
        return int(str(client_port)) != int(str(server_port))
    except ValueError:
        return False


_CHECK = "SELECT current_setting('port'), pg_backend_pid()"


@dataclass(frozen=True)
class PoolerCheck:
    """What :func:`check_pooler` found between a connection and PostgreSQL."""

    by_pid: bool
    """The client was handed a backend pid that is not its server session's: a pooler for sure
    (a port mapping passes the pid on)."""
    by_port: bool
    """The client connected to another port than the server's: a pooler or a port mapping."""

    @property
    def found(self) -> bool:
        """Either sign: the connection may go through a pooler."""
        return self.by_pid or self.by_port


async def check_pooler(conn: psycopg.AsyncConnection[Any]) -> PoolerCheck:
    """Both signs of a pooler between ``conn`` and PostgreSQL (see the module); never prepared,
    and rolls back what it began on a connection that is not in autocommit."""
    cur = await conn.execute(_CHECK, prepare=False)
    row = await cur.fetchone()
    if not conn.autocommit:
        await conn.rollback()
    if row is None:
        return PoolerCheck(by_pid=False, by_port=False)
    return PoolerCheck(
        by_pid=through_pooler(None, None, conn.info.backend_pid, row[1]),
        by_port=through_pooler(conn.info.port, row[0]),
    )


async def behind_pooler(conn: psycopg.AsyncConnection[Any]) -> bool:
    """Whether ``conn`` reaches PostgreSQL through a pooler or proxy (see the module).

    The check itself is never prepared, whatever the connection's ``prepare_threshold``: it may
    run again and again on one connection of an application's pool, and behind a transaction
    pooler a prepared statement is only on the server session that prepared it."""
    return (await check_pooler(conn)).found


def behind_pooler_sync(conn: psycopg.Connection[Any]) -> bool:
    """:func:`behind_pooler` for a sync connection."""
    row = conn.execute(_CHECK, prepare=False).fetchone()
    if not conn.autocommit:
        conn.rollback()
    return row is not None and through_pooler(conn.info.port, row[0], conn.info.backend_pid, row[1])


async def prepare_unless_pooled(conn: psycopg.AsyncConnection[Any]) -> None:
    """A pool's ``configure`` callback: a new connection that goes through a pooler prepares
    nothing (``prepare_threshold`` None). Used by the pools sqlxmq_py opens itself (the
    dashboard's, the FastAPI lifespan's)."""
    if await behind_pooler(conn):
        conn.prepare_threshold = None
