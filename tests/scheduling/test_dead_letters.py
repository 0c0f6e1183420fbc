"""Dead letters: a job that fails for good spawns its dead-letter job with the original payload
and the error."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg

from sqlxmq_py import CurrentJob, job
from sqlxmq_py.pull import fail, fetch

from ..helpers import Runner, count_jobs


async def test_a_job_failing_for_good_spawns_its_dead_letter(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    received: list[tuple[Any, bytes | None, str, int]] = []
    arrived = asyncio.Event()
    attempts: list[int] = []

    @job(channel_name="dlq")
    async def graveyard(current_job: CurrentJob) -> None:
        received.append(
            (
                current_job.json(),
                current_job.raw_bytes(),
                current_job.channel_name,
                current_job.attempt,
            )
        )
        arrived.set()

    @job(channel_name="work", retries=1, backoff=0, dead_letter=graveyard)
    async def fragile(current_job: CurrentJob) -> None:
        attempts.append(current_job.attempt)
        raise RuntimeError(f"boom on attempt {current_job.attempt}")

    job_id = (
        fragile.builder()
        .set_channel_args("tenant-7")
        .set_json({"order": 17})
        .set_raw_bytes(b"\x00\xffraw")
        .spawn(conn)
    )
    conn.commit()
    async with runner([fragile, graveyard]):
        await asyncio.wait_for(arrived.wait(), 10)
    assert attempts == [1, 2]
    ((payload, raw, channel, attempt),) = received
    assert raw == b"\x00\xffraw"
    assert channel == "dlq"
    assert attempt == 1
    error = payload.pop("error")
    assert error.startswith("RuntimeError: boom on attempt 2")
    assert payload == {
        "job_id": str(job_id),
        "job_name": fragile.name,
        "channel_name": "work",
        "channel_args": "tenant-7",
        "attempts": 2,
        "payload": {"order": 17},
    }
    # the failed job stays failed; only one dead letter was spawned
    assert count_jobs(db, f"id = '{job_id}' AND state = 'f'") == 1
    assert len(received) == 1


def test_no_dead_letter_while_attempts_remain(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    @job
    async def graveyard(current_job: CurrentJob) -> None:
        pass

    @job(retries=1, dead_letter=graveyard)
    async def fragile(current_job: CurrentJob) -> None:
        pass

    fragile.builder().set_json(1).spawn(conn)
    conn.commit()
    (first,) = fetch(conn)
    assert fail(conn, first, "once", delay=0) == "retrying"
    conn.commit()
    assert count_jobs(db) == 1
    (second,) = fetch(conn)
    assert fail(conn, second, "twice") == "failed"
    conn.commit()
    row = db.execute(
        "SELECT p.name, p.payload_json->>'error', j.channel_name FROM mq_jobs j "
        "JOIN mq_payloads p USING (id) WHERE p.name = %s",
        (graveyard.name,),
    ).fetchall()
    assert row == [(graveyard.name, "twice", "")]


def test_set_dead_letter_by_name_or_job(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    @job(channel_name="dead")
    async def graveyard(current_job: CurrentJob) -> None:
        pass

    @job(retries=0)
    async def plain(current_job: CurrentJob) -> None:
        pass

    plain.builder().set_dead_letter("by_name").set_json("a").spawn(conn)
    plain.builder().set_dead_letter(graveyard).set_json("b").spawn(conn)
    plain.builder().set_dead_letter(graveyard).set_dead_letter(None).set_json("c").spawn(conn)
    conn.commit()
    for item in fetch(conn, limit=3):
        assert fail(conn, item, "broken") == "failed"
    conn.commit()
    rows = db.execute(
        "SELECT p.name, j.channel_name, p.payload_json->>'payload' FROM mq_jobs j "
        "JOIN mq_payloads p USING (id) WHERE j.state <> 'f' ORDER BY p.name"
    ).fetchall()
    assert rows == [("by_name", "", "a"), (graveyard.name, "dead", "b")]
