"""What a runner finds out before it starts: where to connect, whether a pooler sits in
between (and so whether to LISTEN and prepare statements), and whether the schema is current."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool

from .._pooler import PoolerCheck, check_pooler
from ..embedded import resolve_dsn
from ..errors import ConfigurationError, SchemaError
from ..migrate import load_migrations
from ..sql import query
from ._config import RunnerConfig
from ._connection import DedicatedConnection, connect_kwargs

__all__ = ["Connections", "check_schema", "connect_args", "plan_connections", "probe_pooler"]


@dataclass(frozen=True, kw_only=True)
class Connections:
    """How the runner's connections are made."""

    pooled: bool
    """A pooler or proxy sits between the runner and PostgreSQL."""
    listen: bool
    """Whether the runner LISTENs (not through a transaction pooler, unless told where)."""
    prepared: bool
    """Whether statements are prepared on the server."""


def plan_connections(found: PoolerCheck, config: RunnerConfig) -> Connections:
    """Decides from what the pooler check found and what the runner was told."""
    # a LISTEN through a transaction pooler lands on a server session it then never leaves,
    # and hears nothing: behind a pooler for sure, listen only where told to
    listen = not found.by_pid or config.listen_dsn is not None
    prepared = config.prepared_statements
    if prepared is None:
        prepared = not found.found
    return Connections(pooled=found.found, listen=listen, prepared=prepared)


async def probe_pooler(conninfo: str, kwargs: dict[str, Any]) -> PoolerCheck:
    """One direct connection first: a wrong password or database fails now, saying why (once
    running, the runner keeps retrying instead: credentials may be fixed under it)."""
    probe = await psycopg.AsyncConnection.connect(conninfo, **connect_kwargs(kwargs))
    try:
        return await check_pooler(probe)
    finally:
        await probe.close()


async def connect_args(
    pool: AsyncConnectionPool[Any] | str | None,
) -> tuple[str, dict[str, Any]]:
    """The connection string and arguments for the runner's own connections: a given pool's,
    or those of a connection string (None: the environment's, or the embedded server's)."""
    if isinstance(pool, AsyncConnectionPool):
        conninfo: Any = pool.conninfo
        if callable(conninfo):
            conninfo = conninfo()
            if asyncio.iscoroutine(conninfo):
                conninfo = await conninfo
        kwargs: Any = pool.kwargs
        if callable(kwargs):
            kwargs = kwargs()
            if asyncio.iscoroutine(kwargs):
                kwargs = await kwargs
        return str(conninfo), dict(kwargs or {})
    conninfo = resolve_dsn(pool)
    try:
        conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        # say nothing of its text: it may hold a password
        raise ConfigurationError("the connection string cannot be parsed") from None
    return conninfo, {}


async def check_schema(conn: DedicatedConnection) -> None:
    """Raises SchemaError unless every migration of this version has been applied."""
    try:
        rows = await conn.execute(query("migrations_applied"), writes=False)
    except psycopg.errors.UndefinedTable as exc:
        raise SchemaError(
            "the database has no sqlxmq_py schema: run sqlxmq_py.migrate(conn) first"
        ) from exc
    applied = {name for name, _ in rows}
    missing = [m.name for m in load_migrations() if m.name not in applied]
    if missing:
        raise SchemaError(
            f"the database schema is behind this version of sqlxmq_py (missing {missing}): "
            "run sqlxmq_py.migrate(conn)"
        )
