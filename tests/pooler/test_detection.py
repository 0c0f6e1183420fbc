"""Finding the pooler: by its port, or by the backend pid it hands its clients, so that a
PgBouncer on the server's own port number (of another host) is found too."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import psycopg
import pytest

from sqlxmq_py import CurrentJob, job
from sqlxmq_py._pooler import behind_pooler, behind_pooler_sync, through_pooler

from .conftest import PgBouncer, StartPgBouncer, captured_logs, events, running


def test_through_pooler_by_port_or_by_pid() -> None:
    assert not through_pooler(5432, "5432")
    assert through_pooler(6432, "5432")
    assert not through_pooler(5432, "5432", 4242, 4242)
    assert through_pooler(5432, "5432", -1566004219, 4242)  # PgBouncer's own key
    assert through_pooler(6432, "5432", 4242, 4242)
    assert not through_pooler(5432, "5432", None, 4242)
    assert not through_pooler("not a port", "5432")


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
