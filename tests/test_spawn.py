"""Spawning jobs on the application's connection: every option lands in the row, transactions
decide, ordered chains keep spawn order."""

from __future__ import annotations

import asyncio
import threading
import uuid
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from sqlxmq_py import (
    ConfigurationError,
    CurrentJob,
    clear,
    clear_all,
    commit,
    exists,
    job,
    spawn_many,
)

from .helpers import count_jobs, job_row, payload_count


@job(channel_name="default-channel")
async def greet(current_job: CurrentJob) -> None:
    pass


def test_every_builder_option_lands_in_the_row(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    job_id = (
        greet.builder()
        .set_channel_name("emails")
        .set_channel_args("user-42")
        .set_json({"to": "a@example.com", "n": [1, 2.5, None, True]})
        .set_raw_bytes(b"\x00\x01binary\xff")
        .set_delay(timedelta(hours=1))
        .set_retries(7)
        .set_retry_backoff(timedelta(seconds=3))
        .set_priority(5)
        .set_lease(timedelta(minutes=2))
        .spawn(conn)
    )
    conn.commit()
    row = job_row(db, job_id)
    assert row is not None
    assert row["name"] == greet.name
    assert row["channel_name"] == "emails"
    assert row["channel_args"] == "user-42"
    assert row["payload_json"] == '{"to":"a@example.com","n":[1,2.5,null,true]}'
    assert bytes(row["payload_bytes"]) == b"\x00\x01binary\xff"
    assert row["state"] == "s"  # delayed: scheduled
    delay = row["attempt_at"] - row["created_at"]
    assert timedelta(minutes=59) < delay <= timedelta(hours=1, seconds=1)
    assert row["max_attempts"] == 8
    assert row["attempts"] == 0
    assert row["retry_backoff"] == timedelta(seconds=3)
    assert row["priority"] == 5
    assert row["lease"] == timedelta(minutes=2)
    assert row["ord_seq"] is None
    assert row["commit_deadline"] is None
    assert row["lease_token"] is None


def test_defaults_come_from_the_decorator(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    job_id = greet.builder().spawn(conn)
    conn.commit()
    row = job_row(db, job_id)
    assert row is not None
    assert row["channel_name"] == "default-channel"
    assert row["channel_args"] == ""
    assert row["state"] == "r"
    assert row["max_attempts"] == 5
    assert row["retry_backoff"] == timedelta(seconds=1)
    assert row["payload_json"] is None
    assert row["payload_bytes"] is None
    assert row["lease"] is None


def test_ordered_and_two_phase_options_land_in_the_row(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    first = greet.builder().set_ordered().spawn(conn)
    second = greet.builder().set_ordered().set_commit_interval(60).spawn(conn)
    conn.commit()
    one, two = job_row(db, first), job_row(db, second)
    assert one is not None
    assert two is not None
    assert one["ord_seq"] < two["ord_seq"]
    assert one["state"] == "r"
    assert two["state"] == "u"
    assert (
        timedelta(seconds=59) < two["commit_deadline"] - two["created_at"] <= timedelta(seconds=61)
    )


def test_sync_spawn_on_a_connection_joins_its_transaction(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    job_id = greet.builder().spawn(conn)
    assert not exists(db, job_id)  # not committed yet: invisible elsewhere
    assert exists(conn, job_id)
    conn.commit()
    assert exists(db, job_id)


def test_rollback_drops_the_job_and_its_payload(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    job_id = greet.builder().set_json("x").spawn(conn)
    conn.rollback()
    assert not exists(db, job_id)
    assert payload_count(db) == 0


def test_rollback_drops_the_wake_up(
    conn: psycopg.Connection[Any], dsn: str, db: psycopg.Connection[Any]
) -> None:
    db.execute("INSERT INTO mq_listeners (id, idle) VALUES (gen_random_uuid(), true)")
    with psycopg.connect(dsn, autocommit=True) as listener:
        listener.execute("LISTEN mq")
        greet.builder().spawn(conn)
        conn.rollback()
        greet.builder().spawn(conn)
        conn.commit()
        notes = list(listener.notifies(timeout=1.0, stop_after=2))
    assert len(notes) == 1  # only the committed spawn woke anyone


def test_spawn_does_not_notify_when_no_runner_is_idle(
    conn: psycopg.Connection[Any], dsn: str, db: psycopg.Connection[Any]
) -> None:
    db.execute("INSERT INTO mq_listeners (id, idle) VALUES (gen_random_uuid(), false)")
    with psycopg.connect(dsn, autocommit=True) as listener:
        listener.execute("LISTEN mq")
        greet.builder().spawn(conn)
        conn.commit()
        assert list(listener.notifies(timeout=0.3)) == []


def test_sync_spawn_on_a_pool(pool: ConnectionPool[Any], db: psycopg.Connection[Any]) -> None:
    job_id = greet.builder().set_json([1]).spawn(pool)
    assert exists(db, job_id)


async def test_async_spawn_on_a_connection_and_a_pool(
    aconn: psycopg.AsyncConnection[Any],
    apool: AsyncConnectionPool[Any],
    db: psycopg.Connection[Any],
) -> None:
    first = await greet.builder().set_json("a").spawn(aconn)
    assert not exists(db, first)
    await aconn.commit()
    second = await greet.builder().set_json("b").spawn(apool)
    assert exists(db, first)
    assert exists(db, second)
    assert await exists(aconn, second)
    assert await exists(apool, first)


async def test_async_rollback_drops_the_job(
    aconn: psycopg.AsyncConnection[Any], db: psycopg.Connection[Any]
) -> None:
    job_id = await greet.builder().spawn(aconn)
    await aconn.rollback()
    assert not exists(db, job_id)


def test_spawn_does_not_commit_an_autocommit_free_transaction(
    dsn: str, db: psycopg.Connection[Any]
) -> None:
    with psycopg.connect(dsn) as c:
        with c.transaction():
            job_id = greet.builder().spawn(c)
            assert c.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        assert exists(db, job_id)


def test_raw_json_is_stored_exactly(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    text = '{ "b" : 1,  "a":[ 2 ,3], "b": "dup" }'
    job_id = greet.builder().set_raw_json(text).spawn(conn)
    conn.commit()
    row = job_row(db, job_id)
    assert row is not None
    assert row["payload_json"] == text


def test_unicode_and_large_payloads_round_trip(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    value = {"text": "héllo ✓ 𝄞 \u0000 \"quoted\" 'single'", "big": "x" * 1_000_000}
    job_id = greet.builder().set_json(value).set_raw_bytes(bytes(range(256)) * 100).spawn(conn)
    conn.commit()
    row = job_row(db, job_id)
    assert row is not None
    import json

    assert json.loads(row["payload_json"]) == value
    assert bytes(row["payload_bytes"]) == bytes(range(256)) * 100


@pytest.mark.parametrize(
    "channel",
    [
        "",
        "c" * 200,
        "emails; DROP TABLE mq_jobs; --",
        "quote\"s and 'apostrophes'",
        "ünïcödé 通道 🚀",
        "mq",
        "with\nnewline\tand tab",
    ],
)
def test_channel_names_of_any_length_and_characters(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], channel: str
) -> None:
    job_id = greet.builder().set_channel_name(channel).set_channel_args(channel).spawn(conn)
    conn.commit()
    row = job_row(db, job_id)
    assert row is not None
    assert row["channel_name"] == channel
    assert row["channel_args"] == channel
    assert count_jobs(db) == 1  # and mq_jobs still exists


def test_spawn_many_inserts_ten_thousand_jobs_in_one_call(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    builders = [
        greet.builder().set_json({"i": i}).set_channel_args(str(i % 10)) for i in range(10_000)
    ]
    ids = spawn_many(conn, builders)
    conn.commit()
    assert len(ids) == len(set(ids)) == 10_000
    assert count_jobs(db) == 10_000
    assert payload_count(db) == 10_000
    row = job_row(db, ids[1234])
    assert row is not None
    assert row["payload_json"] == '{"i":1234}'
    assert row["channel_args"] == "4"


async def test_spawn_many_async_and_empty(
    aconn: psycopg.AsyncConnection[Any], db: psycopg.Connection[Any]
) -> None:
    assert await spawn_many(aconn, []) == []
    ids = await spawn_many(aconn, [greet.builder(), greet.builder()])
    await aconn.commit()
    assert count_jobs(db) == 2
    assert all(exists(db, i) for i in ids)


def test_spawn_many_rejects_non_builders(conn: psycopg.Connection[Any]) -> None:
    with pytest.raises(ConfigurationError, match="JobBuilder"):
        spawn_many(conn, ["not a builder"])  # type: ignore[list-item]


def _chain(db: psycopg.Connection[Any], channel: str) -> list[tuple[uuid.UUID, str]]:
    return [
        (r[0], r[1])
        for r in db.execute(
            "SELECT id, state::text FROM mq_jobs WHERE channel_name = %s ORDER BY ord_seq",
            (channel,),
        ).fetchall()
    ]


def test_spawn_many_chains_ordered_jobs_in_the_order_given(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    builders = [greet.builder().set_channel_name("o").set_ordered().set_json(i) for i in range(50)]
    ids = spawn_many(conn, builders)
    conn.commit()
    chain = _chain(db, "o")
    assert [job_id for job_id, _ in chain] == ids
    assert [state for _, state in chain] == ["r"] + ["b"] * 49


def test_ordered_chains_keep_spawn_order_under_eight_concurrent_transactions(
    dsn: str, db: psycopg.Connection[Any]
) -> None:
    per_thread = 25
    order: list[uuid.UUID] = []
    order_lock = threading.Lock()
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def producer(n: int) -> None:
        try:
            with psycopg.connect(dsn) as c:
                start.wait()
                for i in range(per_thread):
                    with c.transaction():
                        job_id = (
                            greet.builder()
                            .set_channel_name("ordered")
                            .set_ordered()
                            .set_json([n, i])
                            .spawn(c)
                        )
                        # the chain lock is held until commit: record the order it was granted in
                        with order_lock:
                            order.append(job_id)
        except BaseException as exc:  # collected and re-raised in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=producer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    chain = _chain(db, "ordered")
    assert [job_id for job_id, _ in chain] == order
    assert [state for _, state in chain] == ["r"] + ["b"] * (8 * per_thread - 1)


def test_ordered_jobs_do_not_block_unordered_ones_or_other_groups(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    spawn_many(conn, [greet.builder().set_channel_name("c").set_ordered() for _ in range(3)])
    free = greet.builder().set_channel_name("c").spawn(conn)
    other = greet.builder().set_channel_name("c").set_channel_args("x").set_ordered().spawn(conn)
    conn.commit()
    assert (job_row(db, free) or {})["state"] == "r"
    assert (job_row(db, other) or {})["state"] == "r"


def test_ordered_successor_becomes_ready_when_its_predecessor_leaves(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    first, second, third = spawn_many(
        conn, [greet.builder().set_channel_name("c").set_ordered() for _ in range(3)]
    )
    conn.commit()
    db.execute("DELETE FROM mq_jobs WHERE id = %s", (second,))  # cancel the middle one
    assert (job_row(db, third) or {})["state"] == "b"  # still behind the first
    db.execute("DELETE FROM mq_jobs WHERE id = %s", (first,))
    assert (job_row(db, third) or {})["state"] == "r"


def test_two_phase_jobs_wait_for_commit(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    job_id = greet.builder().set_commit_interval(timedelta(minutes=5)).spawn(conn)
    later = greet.builder().set_commit_interval(60).set_delay(3600).spawn(conn)
    conn.commit()
    assert (job_row(db, job_id) or {})["state"] == "u"
    commit(conn, [job_id, later])
    conn.commit()
    row = job_row(db, job_id)
    assert row is not None
    assert row["state"] == "r"
    assert row["commit_deadline"] is None
    assert (job_row(db, later) or {})["state"] == "s"


async def test_commit_async(
    aconn: psycopg.AsyncConnection[Any], db: psycopg.Connection[Any]
) -> None:
    job_id = await greet.builder().set_commit_interval(60).spawn(aconn)
    await commit(aconn, [job_id])
    await aconn.commit()
    assert (job_row(db, job_id) or {})["state"] == "r"


def test_two_phase_ordered_job_reserves_its_position(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    reserved = (
        greet.builder().set_channel_name("c").set_ordered().set_commit_interval(60).spawn(conn)
    )
    after = greet.builder().set_channel_name("c").set_ordered().spawn(conn)
    conn.commit()
    assert (job_row(db, after) or {})["state"] == "b"
    commit(conn, [reserved])
    conn.commit()
    assert (job_row(db, reserved) or {})["state"] == "r"
    assert (job_row(db, after) or {})["state"] == "b"


def test_clear_and_clear_all(conn: psycopg.Connection[Any], db: psycopg.Connection[Any]) -> None:
    spawn_many(
        conn, [greet.builder().set_channel_name(c).set_json(1) for c in ["a", "a", "b", "c"]]
    )
    conn.commit()
    assert clear(conn, ["a", "b"]) == 3
    conn.commit()
    assert count_jobs(db) == 1
    assert payload_count(db) == 1
    assert clear_all(conn) == 1
    conn.commit()
    assert count_jobs(db) == payload_count(db) == 0
    with pytest.raises(ConfigurationError, match="list of names"):
        clear(conn, "a")


async def test_clear_async(aconn: psycopg.AsyncConnection[Any]) -> None:
    await greet.builder().spawn(aconn)
    assert await clear(aconn, ["default-channel"]) == 1
    assert await clear_all(aconn) == 0


def test_sql_function_spawns_like_the_builder(db: psycopg.Connection[Any]) -> None:
    row = db.execute(
        "SELECT mq_spawn('greet', '{\"a\": 1}', channel_name => 'sql', retries => 2, priority => 9)"
    ).fetchone()
    assert row is not None
    spawned = job_row(db, row[0])
    assert spawned is not None
    assert spawned["name"] == "greet"
    assert spawned["channel_name"] == "sql"
    assert spawned["max_attempts"] == 3
    assert spawned["priority"] == 9
    assert spawned["state"] == "r"
    assert row[0].version == 7
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="retries"):
        db.execute("SELECT mq_spawn('greet', retries => -1)")


def test_concurrent_async_spawns_on_a_pool(dsn: str, db: psycopg.Connection[Any]) -> None:
    async def main() -> None:
        async with AsyncConnectionPool(dsn, min_size=4, max_size=4, open=False) as p:
            await asyncio.gather(*(greet.builder().set_json(i).spawn(p) for i in range(100)))

    asyncio.run(main())
    assert count_jobs(db) == 100
