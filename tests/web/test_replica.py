"""Reading from a replica: with ``read_conninfo`` every read of the dashboard and the API comes
from the replica (a job the replica has not replayed yet is not shown), changes go to the
primary, and each page says how fresh the replica is. Against a real primary and hot standby
(tests/replica.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import psycopg
import pytest

from sqlxmq_py import job, migrate
from sqlxmq_py.web import create_app

from ..helpers import wait_until
from ..replica import primary_and_replica
from .conftest import AUTH, TOKEN


@job
async def invoice(current_job: Any) -> None: ...


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[str, str]]:
    with primary_and_replica() as dsns:
        yield dsns


@pytest.fixture
async def client(servers: tuple[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    primary, replica = servers
    with psycopg.connect(primary, autocommit=True) as conn:
        migrate(conn)
    app = create_app(primary, token=TOKEN, read_conninfo=replica)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


def _caught_up(primary: str, replica: str) -> bool:
    with psycopg.connect(primary, autocommit=True) as p, psycopg.connect(replica) as r:
        (wanted,) = p.execute("SELECT pg_current_wal_lsn()").fetchone()  # type: ignore[misc]
        (done,) = r.execute(  # type: ignore[misc]
            "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (wanted,)
        ).fetchone()
    return bool(done)


async def test_reads_come_from_the_replica_and_changes_go_to_the_primary(
    servers: tuple[str, str], client: httpx.AsyncClient
) -> None:
    primary, replica = servers
    with psycopg.connect(primary, autocommit=True) as conn:
        seen_job = invoice.builder().set_channel_name("replicated").spawn(conn)
    await wait_until(lambda: _caught_up(primary, replica))
    with psycopg.connect(replica, autocommit=True) as r:
        r.execute("SELECT pg_wal_replay_pause()")
    try:
        with psycopg.connect(primary, autocommit=True) as conn:
            unseen_job = invoice.builder().set_channel_name("replicated").spawn(conn)
        listed = await client.get("/api/jobs", params={"channel": "replicated"})
        assert listed.status_code == 200
        ids = {j["id"] for j in listed.json()["jobs"]}
        assert str(seen_job) in ids
        assert str(unseen_job) not in ids  # the replica has not replayed it: read there
        page = await client.get("/")
        assert page.status_code == 200
        assert "Read from a replica (still replaying" in page.text
        assert (await client.get(f"/api/jobs/{unseen_job}")).status_code == 404
        # a change goes to the primary, which has the job
        cancelled = await client.post(f"/api/jobs/{unseen_job}/cancel", headers=AUTH, json={})
        assert cancelled.status_code == 200, cancelled.text
    finally:
        with psycopg.connect(replica, autocommit=True) as r:
            r.execute("SELECT pg_wal_replay_resume()")
    await wait_until(lambda: _caught_up(primary, replica))
    status = await client.get(f"/api/jobs/{unseen_job}")
    assert status.status_code == 200
    assert status.json()["state"] == "cancelled"
    page = await client.get("/")
    assert "Read from a replica (caught up with what it received" in page.text


async def test_a_read_dsn_that_is_a_primary_says_so(servers: tuple[str, str]) -> None:
    primary, _ = servers
    with psycopg.connect(primary, autocommit=True) as conn:
        migrate(conn)
    app = create_app(primary, read_conninfo=primary)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            page = await c.get("/")
    assert "which is not a replica" in page.text
