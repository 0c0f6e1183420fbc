"""Job keys: replace, preserve_run_at and unsafe_dedupe on a waiting job, a running job left
alone, and throttle windows."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import psycopg

from sqlxmq_py import CurrentJob, job, spawn_many
from sqlxmq_py.admin import job_status
from sqlxmq_py.pull import complete, fail, fetch

from ..helpers import Runner, count_jobs, job_row, wait_until
from ._util import db_now


@job
async def keyed(current_job: CurrentJob) -> None:
    pass


def _payload(db: psycopg.Connection[Any], job_id: Any) -> Any:
    row = job_row(db, job_id)
    assert row is not None
    return json.loads(row["payload_json"])


def test_replace_updates_a_waiting_job(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    first = (
        keyed.builder()
        .set_job_key("report:1")
        .set_json({"v": 1})
        .set_delay(timedelta(hours=1))
        .set_priority(1)
        .set_retries(2)
        .spawn(conn)
    )
    conn.commit()
    run_at = db_now(db) + timedelta(hours=2)
    second = (
        keyed.builder()
        .set_job_key("report:1")
        .set_json({"v": 2})
        .set_raw_bytes(b"\x01\x02")
        .set_run_at(run_at)
        .set_priority(7)
        .set_retries(5)
        .spawn(conn)
    )
    conn.commit()
    assert second == first
    assert count_jobs(db) == 1
    row = job_row(db, first)
    assert row is not None
    assert json.loads(row["payload_json"]) == {"v": 2}
    assert bytes(row["payload_bytes"]) == b"\x01\x02"
    assert row["attempt_at"] == run_at
    assert row["priority"] == 7
    assert row["max_attempts"] == 6
    assert row["state"] == "s"
    assert row["job_key"] == "report:1"

    # replacing with a run time that has come makes it ready
    third = keyed.builder().set_job_key("report:1").set_json({"v": 3}).spawn(conn)
    conn.commit()
    assert third == first
    row = job_row(db, first)
    assert row is not None
    assert row["state"] == "r"
    assert json.loads(row["payload_json"]) == {"v": 3}
    assert row["priority"] == 0


def test_replace_is_the_default_mode(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    first = keyed.builder().set_job_key("k").set_json(1).set_delay(3600).spawn(conn)
    second = keyed.builder().set_job_key("k").set_json(2).spawn(conn)
    conn.commit()
    assert second == first
    assert _payload(db, first) == 2
    assert (job_row(db, first) or {})["state"] == "r"


def test_preserve_run_at_updates_the_job_but_keeps_its_run_time(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    first = keyed.builder().set_job_key("k").set_json(1).set_delay(timedelta(hours=1)).spawn(conn)
    conn.commit()
    before = job_row(db, first)
    assert before is not None
    second = (
        keyed.builder()
        .set_job_key("k", "preserve_run_at")
        .set_json(2)
        .set_priority(3)
        .set_delay(0)
        .spawn(conn)
    )
    conn.commit()
    assert second == first
    after = job_row(db, first)
    assert after is not None
    assert after["attempt_at"] == before["attempt_at"]
    assert after["state"] == "s"
    assert after["priority"] == 3
    assert json.loads(after["payload_json"]) == 2


def test_unsafe_dedupe_leaves_the_waiting_job_untouched(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    first = (
        keyed.builder()
        .set_job_key("k")
        .set_json(1)
        .set_priority(1)
        .set_delay(timedelta(hours=1))
        .spawn(conn)
    )
    conn.commit()
    before = job_row(db, first)
    second = (
        keyed.builder()
        .set_job_key("k", "unsafe_dedupe")
        .set_json(2)
        .set_priority(9)
        .set_retries(0)
        .spawn(conn)
    )
    conn.commit()
    assert second == first
    assert count_jobs(db) == 1
    assert job_row(db, first) == before


def test_keys_are_independent_and_free_again_once_the_job_finished(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    a = keyed.builder().set_job_key("a").spawn(conn)
    b = keyed.builder().set_job_key("b").spawn(conn)
    conn.commit()
    assert a != b
    (fetched,) = fetch(conn, limit=1)
    complete(conn, fetched)
    conn.commit()
    done = fetched.id
    again = keyed.builder().set_job_key("a" if done == a else "b").spawn(conn)
    conn.commit()
    assert again not in (a, b)
    assert count_jobs(db) == 2


async def test_a_running_keyed_job_is_left_alone_and_a_new_job_takes_the_key(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    started = asyncio.Event()
    release = asyncio.Event()
    seen: list[Any] = []

    @job
    async def slow_keyed(current_job: CurrentJob) -> None:
        seen.append(current_job.json())
        if current_job.json() == "old":
            started.set()
            await release.wait()

    running_id = slow_keyed.builder().set_job_key("sync:42").set_json("old").spawn(conn)
    conn.commit()
    async with runner([slow_keyed]):
        await asyncio.wait_for(started.wait(), 10)
        new_id = (
            slow_keyed.builder()
            .set_job_key("sync:42")
            .set_json("new")
            .set_delay(timedelta(hours=1))
            .spawn(conn)
        )
        conn.commit()
        assert new_id != running_id
        running = job_row(db, running_id)
        assert running is not None
        assert running["state"] == "l"  # it keeps running
        assert json.loads(running["payload_json"]) == "old"  # its payload is untouched
        assert running["job_key"] is None  # it gave the key up
        fresh = job_row(db, new_id)
        assert fresh is not None
        assert fresh["job_key"] == "sync:42"
        assert json.loads(fresh["payload_json"]) == "new"
        assert fresh["state"] == "s"
        release.set()
        await wait_until(lambda: job_row(db, running_id) is None)
    assert seen == ["old"]
    assert count_jobs(db) == 1


def test_replace_on_a_failed_keyed_job_gives_it_the_new_retries(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    """A keyed job that failed for good keeps its key; replacing it runs it again with the
    retries of the new spawn: retries + 1 attempts, none used yet."""
    first = keyed.builder().set_job_key("k").set_retries(1).spawn(conn)
    conn.commit()
    for _ in range(2):
        (fetched,) = fetch(conn)
        fail(conn, fetched, "boom", delay=0)
        conn.commit()
    assert (job_row(db, first) or {})["state"] == "f"
    again = keyed.builder().set_job_key("k").set_retries(2).set_json("again").spawn(conn)
    conn.commit()
    assert again == first
    status = job_status(db, first)
    assert status is not None
    assert status.state == "ready"
    assert status.attempts == 0
    assert status.max_attempts == 3


def test_spawn_many_with_one_key_twice_keeps_the_later_payload(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    """Within one spawn_many, a second builder with the same key replaces the first, as two
    spawns in a row would."""
    ids = spawn_many(
        conn,
        [
            keyed.builder().set_job_key("k").set_json(1).set_priority(1),
            keyed.builder().set_job_key("k").set_json(2).set_priority(2),
        ],
    )
    conn.commit()
    assert ids[0] == ids[1]
    assert count_jobs(db) == 1
    row = job_row(db, ids[0])
    assert row is not None
    assert row["priority"] == 2
    assert json.loads(row["payload_json"]) == 2


async def test_throttle_returns_the_windows_job_then_spawns_a_new_one(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    window = timedelta(seconds=1)
    first = keyed.builder().set_job_key("digest", throttle=window).set_json(1).spawn(conn)
    conn.commit()
    second = keyed.builder().set_job_key("digest", throttle=window).set_json(2).spawn(conn)
    conn.commit()
    assert second == first
    assert _payload(db, first) == 1  # the window's job is not replaced
    # the window counts finished jobs too
    (fetched,) = fetch(conn)
    complete(conn, fetched)
    conn.commit()
    third = keyed.builder().set_job_key("digest", throttle=window).set_json(3).spawn(conn)
    conn.commit()
    assert third == first
    assert count_jobs(db) == 0
    # a different key has its own window
    other = keyed.builder().set_job_key("other", throttle=window).spawn(conn)
    conn.commit()
    assert other != first
    row = db.execute("SELECT until FROM mq_throttle WHERE job_key = 'digest'").fetchone()
    assert row is not None
    until = row[0]
    await wait_until(lambda: db_now(db) > until, timeout=5)
    fourth = keyed.builder().set_job_key("digest", throttle=window).set_json(4).spawn(conn)
    conn.commit()
    assert fourth != first
    assert _payload(db, fourth) == 4
    fifth = keyed.builder().set_job_key("digest", throttle=window).set_json(5).spawn(conn)
    conn.commit()
    assert fifth == fourth


async def test_throttle_window_after_a_replace_names_the_job_that_stands_for_it(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    """When a new window opens while the previous window's job still waits, the spawn
    replaces that job and returns its id; later spawns in the window must return the same
    (existing) id, not the id of a job that was never created."""
    window = timedelta(milliseconds=300)
    first = (
        keyed.builder()
        .set_job_key("digest", throttle=window)
        .set_delay(timedelta(hours=1))
        .spawn(conn)
    )
    conn.commit()
    row = db.execute("SELECT until FROM mq_throttle WHERE job_key = 'digest'").fetchone()
    assert row is not None
    until = row[0]
    await wait_until(lambda: db_now(db) > until, timeout=5)
    second = keyed.builder().set_job_key("digest", throttle=window).set_json(2).spawn(conn)
    conn.commit()
    assert second == first  # the waiting job was replaced
    third = keyed.builder().set_job_key("digest", throttle=window).set_json(3).spawn(conn)
    conn.commit()
    assert third == second
    assert job_status(db, third) is not None
