"""The pull API: fetch leases jobs, complete and fail settle them, and a lease that is gone
fences both."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from sqlxmq_py import ConfigurationError, CurrentJob, LeaseLostError, job, spawn_many
from sqlxmq_py.admin import job_status
from sqlxmq_py.pull import FetchedJob, complete, fail, fetch

from ..helpers import Runner, count_jobs, job_row, wait_until
from ._util import db_now, state_of


@job(channel_name="pull")
async def pulled(current_job: CurrentJob) -> None:
    pass


def test_fetch_leases_and_complete_deletes(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    job_id = (
        pulled.builder()
        .set_channel_args("a")
        .set_json({"n": 1})
        .set_raw_bytes(b"\x01")
        .set_job_key("pull:1")
        .spawn(conn)
    )
    conn.commit()
    (item,) = fetch(conn, ["pull"], limit=5, lease=timedelta(minutes=5))
    conn.commit()
    assert isinstance(item, FetchedJob)
    assert (item.id, item.name, item.attempt, item.max_attempts) == (job_id, pulled.name, 1, 5)
    assert (item.channel_name, item.channel_args, item.job_key) == ("pull", "a", "pull:1")
    assert (item.json(), item.raw_bytes()) == ({"n": 1}, b"\x01")
    assert json.loads(item.raw_json() or "") == {"n": 1}
    assert item.lease == timedelta(minutes=5)
    row = job_row(db, job_id)
    assert row is not None
    assert row["state"] == "l"
    assert row["lease_token"] == item.token
    assert fetch(conn, ["pull"]) == []  # leased: nobody else gets it
    complete(conn, item)
    conn.commit()
    assert job_row(db, job_id) is None
    with pytest.raises(LeaseLostError):
        complete(conn, item)
    conn.rollback()


def test_complete_keeps_the_result_when_asked(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    job_id = pulled.builder().spawn(conn)
    conn.commit()
    (item,) = fetch(conn)
    complete(conn, item, {"rows": 3}, retain_for=60)
    conn.commit()
    status = job_status(db, job_id)
    assert status is not None
    assert (status.state, status.result, status.attempts) == ("completed", {"rows": 3}, 1)


def test_complete_is_undone_by_a_rollback(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    job_id = pulled.builder().spawn(conn)
    conn.commit()
    (item,) = fetch(conn)
    conn.commit()
    complete(conn, item)
    conn.rollback()
    assert state_of(db, job_id) == "l"
    complete(conn, item)  # the lease still holds
    conn.commit()
    assert state_of(db, job_id) is None


def test_fail_retries_with_backoff_then_fails_for_good(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    job_id = pulled.builder().set_retries(2).set_retry_backoff(10).spawn(conn)
    conn.commit()
    (item,) = fetch(conn)
    assert fail(conn, item, "first") == "retrying"
    conn.commit()
    row = job_row(db, job_id)
    assert row is not None
    assert row["state"] == "s"
    wait = row["attempt_at"] - db_now(db)
    assert timedelta(seconds=8) < wait <= timedelta(seconds=11)  # its backoff, with jitter
    with pytest.raises(LeaseLostError):
        fail(conn, item, "again")  # this lease was settled
    conn.rollback()
    assert fetch(conn) == []  # not before its backoff
    conn.commit()
    db.execute("UPDATE mq_jobs SET attempt_at = now() WHERE id = %s", (job_id,))  # skip the wait
    (second,) = fetch(conn)
    assert second.attempt == 2
    assert fail(conn, second, RuntimeError("second"), delay=0) == "retrying"
    conn.commit()
    assert state_of(db, job_id) == "r"
    (third,) = fetch(conn)
    assert third.attempt == 3
    assert fail(conn, third, "third") == "failed"
    conn.commit()
    status = job_status(db, job_id)
    assert status is not None
    assert (status.state, status.attempts, status.last_error) == ("failed", 3, "third")


async def test_an_expired_lease_fences_the_old_holder(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    job_id = pulled.builder().spawn(conn)
    conn.commit()
    (stale,) = fetch(conn, lease=timedelta(milliseconds=200))
    conn.commit()
    # a runner that runs no channel still does the maintenance that expires leases
    async with runner([], channel_names=[]):
        await wait_until(lambda: state_of(db, job_id) == "r", timeout=5)
    (fresh,) = fetch(conn)
    conn.commit()
    assert (fresh.id, fresh.attempt) == (job_id, 2)
    assert fresh.token != stale.token
    with pytest.raises(LeaseLostError):
        complete(conn, stale)
    conn.rollback()
    with pytest.raises(LeaseLostError):
        fail(conn, stale, "too late")
    conn.rollback()
    complete(conn, fresh)
    conn.commit()
    assert count_jobs(db) == 0


async def test_an_expired_lease_is_fetched_again_without_a_runner(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    """A pull-only consumer (no runner anywhere) gets a job back once its lease expired: the
    job "becomes ready again" as fetch's documentation says."""
    job_id = pulled.builder().spawn(conn)
    conn.commit()
    (stale,) = fetch(conn, lease=timedelta(milliseconds=100))
    conn.commit()
    row = job_row(db, job_id)
    assert row is not None
    expiry = row["attempt_at"]
    await wait_until(lambda: db_now(db) > expiry, timeout=5)
    again = fetch(conn)
    conn.commit()
    assert [(j.id, j.attempt) for j in again] == [(job_id, 2)]
    with pytest.raises(LeaseLostError):
        complete(conn, stale)
    conn.rollback()


def test_fetch_takes_the_best_priority_first_and_filters_channels(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    low, high, mid = spawn_many(
        conn,
        [
            pulled.builder().set_priority(-1),
            pulled.builder().set_priority(10),
            pulled.builder().set_priority(3),
        ],
    )
    other = pulled.builder().set_channel_name("other").set_priority(100).spawn(conn)
    conn.commit()
    order = [j.id for _ in range(3) for j in fetch(conn, ["pull"])]
    conn.commit()
    assert order == [high, mid, low]
    assert [j.id for j in fetch(conn, ["pull", "other"], limit=10)] == [other]
    conn.commit()


async def test_fetch_complete_and_fail_with_async_connections(
    aconn: psycopg.AsyncConnection[Any],
    apool: AsyncConnectionPool[Any],
    db: psycopg.Connection[Any],
) -> None:
    first, second = spawn_many(db, [pulled.builder(), pulled.builder()])
    items = await fetch(apool, ["pull"], limit=2)
    assert sorted(j.id for j in items) == sorted([first, second])
    await complete(aconn, items[0])
    assert await fail(aconn, items[1], "nope", delay=0) == "retrying"
    await aconn.commit()
    assert count_jobs(db) == 1


def test_fetch_with_a_sync_pool(pool: ConnectionPool[Any], db: psycopg.Connection[Any]) -> None:
    job_id = pulled.builder().spawn(db)
    (item,) = fetch(pool)
    assert item.id == job_id
    assert state_of(db, job_id) == "l"  # the pool's transaction was committed
    complete(pool, item)
    assert state_of(db, job_id) is None


def test_pull_options_are_validated(db: psycopg.Connection[Any]) -> None:
    with pytest.raises(ConfigurationError, match="channel_names"):
        fetch(db, "pull")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="limit"):
        fetch(db, limit=0)
    with pytest.raises(ConfigurationError, match="lease"):
        fetch(db, lease=0)
    with pytest.raises(ConfigurationError, match="FetchedJob"):
        complete(db, uuid.uuid4())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="FetchedJob"):
        fail(db, "job", "error")  # type: ignore[arg-type]
