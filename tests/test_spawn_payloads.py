"""spawn_payloads: many payloads of one job without a builder per job. It writes the rows
spawn_many writes for the same jobs (COPY and INSERT paths alike), keeps the payloads' order,
encodes typed payloads by their declared type, and spawns nothing when one payload is bad."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from sqlxmq_py import CurrentJob, JobBuilder, PayloadError, job, spawn_many
from sqlxmq_py._insert import COPY_MIN_JOBS
from sqlxmq_py.hooks import add_spawn_hook, remove_spawn_hook
from sqlxmq_py.spawn import spawn_payloads

from .helpers import count_jobs, payload_count


@job(channel_name="many", retries=2, lease=90, retain_for=60, priority=1)
async def many(current_job: CurrentJob) -> None:
    pass


@dataclasses.dataclass
class Letter:
    to: str
    n: int


@job
async def typed(current_job: CurrentJob[Letter]) -> None:
    pass


_COLUMNS = """
    j.channel_name, j.channel_args, j.state::text, j.priority, j.attempts, j.max_attempts,
    j.lease, j.ord_seq, j.commit_deadline, j.job_key, p.name, p.payload_json::text,
    p.payload_bytes, p.retry_backoff, p.retain_for, p.dead_letter, p.dead_letter_channel,
    p.headers, j.payload_size, j.attempt_at > now()
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


@pytest.mark.parametrize("count", [1, 7, COPY_MIN_JOBS])
@pytest.mark.parametrize("delayed", [False, True])
def test_the_rows_are_those_spawn_many_writes(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], count: int, delayed: bool
) -> None:
    payloads = [{"n": n, "s": "ü\u2028"} for n in range(count)]
    options: dict[str, Any] = {"channel_args": "g", "priority": 3}
    if delayed:
        options["delay"] = 3600  # not COPY: the INSERT path decides 'scheduled'
    ids = spawn_payloads(conn, many, payloads, **options)
    builders = []
    for p in payloads:
        b = many.builder().set_channel_args("g").set_priority(3).set_json(p)
        builders.append(b.set_delay(3600) if delayed else b)
    expected = spawn_many(conn, builders)
    conn.commit()
    assert len(set(ids)) == count
    assert ids == sorted(ids)  # ids grow in the payloads' order
    assert _rows(db, ids) == _rows(db, expected)
    states = {row[2] for row in _rows(db, ids)}
    assert states == ({"s"} if delayed else {"r"})


def test_typed_payloads_are_encoded_by_their_declared_type(
    conn: psycopg.Connection[Any],
) -> None:
    (job_id,) = spawn_payloads(conn, typed, [Letter(to="ada", n=1)])
    row = conn.execute("SELECT payload_json::text FROM mq_payloads WHERE id = %s", (job_id,))
    assert row.fetchone() == ('{"to":"ada","n":1}',)


def test_one_bad_payload_spawns_nothing(conn: psycopg.Connection[Any]) -> None:
    with pytest.raises(PayloadError):
        spawn_payloads(conn, many, [{"n": 1}] * COPY_MIN_JOBS + [{"bad": float("nan")}])
    with pytest.raises(PayloadError):
        spawn_payloads(conn, typed, [Letter(to="a", n=1), {"to": "b"}])  # type: ignore[list-item]
    conn.commit()
    assert count_jobs(conn) == payload_count(conn) == 0


def test_no_payloads_spawn_nothing_and_a_rollback_takes_the_batch(
    conn: psycopg.Connection[Any],
) -> None:
    assert spawn_payloads(conn, many, []) == []
    spawn_payloads(conn, many, [None] * COPY_MIN_JOBS)
    conn.rollback()
    assert count_jobs(conn) == payload_count(conn) == 0


def test_only_a_job_is_taken(conn: psycopg.Connection[Any]) -> None:
    from sqlxmq_py import ConfigurationError

    with pytest.raises(ConfigurationError, match="takes a job"):
        spawn_payloads(conn, JobBuilder("x"), [1])  # type: ignore[call-overload]


@pytest.fixture
def counting_hook() -> Iterator[list[JobBuilder]]:
    seen: list[JobBuilder] = []

    def hook(builder: JobBuilder) -> None:
        seen.append(builder)
        builder.set_header("trace", "t")

    add_spawn_hook(hook)
    yield seen
    remove_spawn_hook(hook)


def test_the_spawn_hooks_run_once_and_every_job_gets_their_headers(
    conn: psycopg.Connection[Any], counting_hook: list[JobBuilder]
) -> None:
    ids = spawn_payloads(conn, many, [{"n": n} for n in range(COPY_MIN_JOBS)])
    assert len(counting_hook) == 1
    rows = conn.execute(
        "SELECT DISTINCT headers::text FROM mq_payloads WHERE id = ANY(%s)", (ids,)
    ).fetchall()
    assert rows == [('{"trace": "t"}',)]


async def test_an_async_connection_gets_an_awaitable(aconn: psycopg.AsyncConnection[Any]) -> None:
    ids = await spawn_payloads(aconn, many, [{"n": n} for n in range(COPY_MIN_JOBS + 1)])
    await aconn.commit()
    cur = await aconn.execute("SELECT count(*) FROM mq_jobs WHERE id = ANY(%s)", (ids,))
    assert await cur.fetchone() == (COPY_MIN_JOBS + 1,)
