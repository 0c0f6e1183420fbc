"""spawn_many's COPY path (batches of COPY_MIN_JOBS plain jobs that may run at once) writes
exactly the rows the INSERT path writes, joins the caller's transaction like it, wakes idle
runners, and leaves every job that COPY cannot express to the INSERT path."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from sqlxmq_py import CurrentJob, JobBuilder, job, spawn_many
from sqlxmq_py._insert import COPY_MIN_JOBS, copy_rows

from .helpers import count_jobs, payload_count


@job(channel_name="bulk", retries=2, backoff=3, lease=90, retain_for=60, priority=1)
async def bulk(current_job: CurrentJob) -> None:
    pass


@job
async def fallback(current_job: CurrentJob) -> None:
    pass


def _varied(i: int) -> JobBuilder:
    """Every option COPY carries, varied from job to job."""
    b = bulk.builder().set_channel_args(f"g{i % 7}").set_priority(i % 5 - 2)
    if i % 3 == 0:
        b.set_json({"i": i, "s": 'ü\u2028"q"', "n": None})
    if i % 3 == 1:
        b.set_raw_bytes(bytes([i % 256, 0, 255]))
    if i % 4 == 0:
        b.set_header("traceparent", f"00-{i:032x}-{i:016x}-01").set_header("k", 'v"')
    if i % 5 == 0:
        b.set_dead_letter(fallback).set_retain_for(None).set_lease(None)
    if i % 11 == 0:
        b.set_channel_name("other").set_retries(0).set_retry_backoff(timedelta(milliseconds=250))
    return b


_COLUMNS = """
    j.channel_name, j.channel_args, j.state::text, j.priority, j.attempts, j.max_attempts,
    j.lease, j.lease_token, j.ord_seq, j.commit_deadline, j.job_key, j.has_children,
    j.cancel_requested, p.name, p.payload_json::text, p.payload_bytes, p.retry_backoff,
    p.retain_for, p.dead_letter, p.dead_letter_channel, p.headers, p.last_error,
    j.attempt_at = p.created_at
"""


def _rows(db: psycopg.Connection[Any], ids: list[uuid.UUID]) -> list[tuple[Any, ...]]:
    found = {
        row[0]: row[1:]
        for row in db.execute(
            f"SELECT j.id, {_COLUMNS} FROM mq_jobs AS j JOIN mq_payloads AS p ON p.id = j.id"
            " WHERE j.id = ANY(%s)",
            (ids,),
        )
    }
    return [found[i] for i in ids]


def test_copy_writes_the_rows_the_insert_path_writes(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    copied = [_varied(i) for i in range(COPY_MIN_JOBS)]
    inserted = [_varied(i) for i in range(COPY_MIN_JOBS - 1)]  # one short: the INSERT path
    assert copy_rows([b.to_write() for b in copied]) is not None
    assert copy_rows([b.to_write() for b in inserted]) is None
    copied_ids = spawn_many(conn, copied)
    inserted_ids = spawn_many(conn, inserted)
    conn.commit()
    assert copied_ids == sorted(copied_ids)  # ids grow in the order given
    assert len(set(copied_ids)) == COPY_MIN_JOBS
    assert count_jobs(db) == payload_count(db) == 2 * COPY_MIN_JOBS - 1
    assert _rows(db, copied_ids[:-1]) == _rows(db, inserted_ids)
    first = _rows(db, copied_ids[:1])[0]
    assert first[2] == "r"
    assert json.loads(first[14]) == {"i": 0, "s": 'ü\u2028"q"', "n": None}
    assert first[20] == {"traceparent": f"00-{0:032x}-{0:016x}-01", "k": 'v"'}


def test_copy_joins_the_callers_transaction(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    spawn_many(conn, [bulk.builder() for _ in range(COPY_MIN_JOBS)])
    conn.rollback()
    assert count_jobs(db) == payload_count(db) == 0
    with conn.transaction():
        spawn_many(conn, [bulk.builder() for _ in range(COPY_MIN_JOBS)])
        assert count_jobs(db) == 0  # not visible before the caller commits
    assert count_jobs(db) == payload_count(db) == COPY_MIN_JOBS


def test_copy_on_an_autocommit_connection_is_atomic(dsn: str, db: psycopg.Connection[Any]) -> None:
    broken = [bulk.builder() for _ in range(COPY_MIN_JOBS)]
    duplicate = uuid.uuid4()
    broken[0].set_id(duplicate)
    broken[-1].set_id(duplicate)
    with psycopg.connect(dsn, autocommit=True) as c:
        with pytest.raises(psycopg.errors.UniqueViolation):
            spawn_many(c, broken)
        assert count_jobs(db) == payload_count(db) == 0  # the payloads did not stay behind
        ids = spawn_many(c, [bulk.builder() for _ in range(COPY_MIN_JOBS)])
    assert count_jobs(db, "state = 'r'") == len(ids) == COPY_MIN_JOBS


def test_copy_wakes_idle_runners_of_its_channels(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    db.execute(
        "INSERT INTO mq_listeners (id, channel_names, idle) VALUES (gen_random_uuid(), NULL, true)"
    )
    db.commit()
    with psycopg.connect(db.info.dsn, autocommit=True) as listener:
        listener.execute("LISTEN mq")
        spawn_many(conn, [bulk.builder() for _ in range(COPY_MIN_JOBS)])
        assert list(listener.notifies(timeout=0.2)) == []  # not before the commit
        conn.commit()
        assert [n.channel for n in listener.notifies(timeout=5, stop_after=1)] == ["mq"]


def test_copy_on_a_pool(pool: ConnectionPool[Any], db: psycopg.Connection[Any]) -> None:
    ids = spawn_many(pool, [bulk.builder() for _ in range(COPY_MIN_JOBS)])
    assert count_jobs(db) == len(ids) == COPY_MIN_JOBS  # the pool's transaction committed


async def test_copy_async_on_a_connection_and_a_pool(
    aconn: psycopg.AsyncConnection[Any],
    apool: AsyncConnectionPool[Any],
    db: psycopg.Connection[Any],
) -> None:
    ids = await spawn_many(aconn, [_varied(i) for i in range(COPY_MIN_JOBS)])
    await aconn.rollback()
    assert count_jobs(db) == 0
    ids = await spawn_many(aconn, [_varied(i) for i in range(COPY_MIN_JOBS)])
    await aconn.commit()
    more = await spawn_many(apool, [_varied(i) for i in range(COPY_MIN_JOBS)])
    assert count_jobs(db) == payload_count(db) == 2 * COPY_MIN_JOBS
    assert _rows(db, ids) == _rows(db, more)
