"""Finding the pooler: by its port, or by the backend pid it hands its clients, so that a
PgBouncer on the server's own port number (of another host) is found too."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import psycopg
import pytest

from sqlxmq_py import CurrentJob, job
from sqlxmq_py._pooler import behind_pooler, behind_pooler_sync, check_pooler
from sqlxmq_py.integrations.fastapi import sqlxmq_lifespan
from sqlxmq_py.web.context import PoolHolder

from ..helpers import running
from .conftest import PgBouncer, StartPgBouncer, captured_logs, events


def same_port_pgbouncer(pgbouncer: StartPgBouncer, direct: psycopg.Connection[Any]) -> PgBouncer:
    """A PgBouncer on the server's port number, on another loopback address."""
    row = direct.execute("SELECT current_setting('port')").fetchone()
    assert row is not None
    port = int(row[0])
    for last in range(2, 10):
        address = f"127.0.0.{last}"
        with socket.socket() as probe:
            try:
                probe.bind((address, port))
            except OSError:
                continue
        return pgbouncer(listen=(address, port))
    pytest.fail(f"no loopback address has port {port} free for a PgBouncer")


async def test_a_pooler_on_the_servers_port_number_is_found(
    pgbouncer: StartPgBouncer, db: psycopg.Connection[Any]
) -> None:
    bouncer = same_port_pgbouncer(pgbouncer, db)
    assert not behind_pooler_sync(db)
    with psycopg.connect(bouncer.dsn, prepare_threshold=None) as conn:
        assert conn.info.port == int(db.execute("SHOW port").fetchone()[0])  # type: ignore[index]
        assert behind_pooler_sync(conn)
        assert not conn.info.transaction_status  # rolled back: left as it was found
    async with await psycopg.AsyncConnection.connect(
        bouncer.dsn, prepare_threshold=None, autocommit=True
    ) as aconn:
        assert await behind_pooler(aconn)
    ran = asyncio.Event()

    @job
    async def noted(current_job: CurrentJob) -> None:
        ran.set()

    async with captured_logs() as (logs, _), running(bouncer.dsn, [noted]):
        with psycopg.connect(bouncer.dsn, autocommit=True, prepare_threshold=None) as producer:
            noted.builder().spawn(producer)
        await asyncio.wait_for(ran.wait(), 10)
    (started,) = events(logs, "runner_started")
    assert (started["behind_pooler"], started["prepared_statements"]) == (True, False)


async def test_check_pooler_tells_a_pooler_for_sure_from_a_port_mapping(
    pgbouncer: StartPgBouncer, dsn: str
) -> None:
    """PgBouncer hands its clients a backend pid of its own: a pooler for sure (the runner then
    does not LISTEN through it); a direct connection shows neither sign."""
    bouncer = pgbouncer()
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as direct:
        found = await check_pooler(direct)
        assert (found.by_pid, found.by_port, found.found) == (False, False, False)
    async with await psycopg.AsyncConnection.connect(bouncer.dsn, prepare_threshold=None) as pooled:
        found = await check_pooler(pooled)
        assert (found.by_pid, found.by_port, found.found) == (True, True, True)
        assert not pooled.info.transaction_status  # left idle


async def test_the_pools_sqlxmq_opens_prepare_nothing_behind_a_pooler(
    pgbouncer: StartPgBouncer, dsn: str
) -> None:
    """The dashboard's pool and the FastAPI lifespan's: a connection through PgBouncer never
    prepares (psycopg would after 5 runs of one statement), a direct one still does."""
    bouncer = pgbouncer()
    for target, threshold in ((bouncer.dsn, None), (dsn, 5)):
        holder = PoolHolder(target)
        pool = await holder.open()
        try:
            async with pool.connection() as conn:
                for _ in range(10):
                    await conn.execute("SELECT 1")
                assert conn.prepare_threshold == threshold
        finally:
            await holder.close()
        async with (
            sqlxmq_lifespan(dsn=target)(None) as state,
            state["sqlxmq_pool"].connection() as conn,
        ):
            for _ in range(10):
                await conn.execute("SELECT 1")
            assert conn.prepare_threshold == threshold
