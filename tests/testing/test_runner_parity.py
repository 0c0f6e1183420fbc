"""drain() leaves the queue as a real runner leaves it: the same jobs, spawned into two
databases, one drained in a test's transaction and one run by a runner, end in the same rows
(state, attempts, recorded error, retry time, kept result)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import psycopg

from sqlxmq_py import JobRegistry, job
from sqlxmq_py.current_job import JobInfo
from sqlxmq_py.hooks import JobOutcome, RunnerHooks
from sqlxmq_py.testing import drain

from ..helpers import running
from .jobs import Email, boom, send


@job(name="kit.unknown_to_the_registry", channel_name="kit")
async def unknown(current_job: Any) -> None: ...


REGISTRY = JobRegistry([send, boom])

HOT = """
SELECT p.name, j.state::text, j.attempts, j.max_attempts, split_part(p.last_error, E'\\n', 1),
    j.attempt_at - p.created_at
FROM mq_jobs AS j JOIN mq_payloads AS p ON p.id = j.id
ORDER BY p.name, j.state
"""
KEPT = "SELECT name, state, attempts, result::text FROM mq_history ORDER BY name"


async def spawn_all(conn: psycopg.AsyncConnection[Any]) -> None:
    await send.builder().set_json(Email("ada@example.com")).set_retain_for(3600).spawn(conn)
    await send.builder().set_json(Email("bob@example.invalid")).set_channel_args("b").spawn(conn)
    await send.builder().set_raw_json('{"to": 42}').set_channel_args("c").spawn(conn)
    await boom.builder().spawn(conn)
    await unknown.builder().spawn(conn)


async def rows(conn: psycopg.AsyncConnection[Any]) -> tuple[list[Any], list[Any]]:
    hot = await (await conn.execute(HOT)).fetchall()
    kept = await (await conn.execute(KEPT)).fetchall()
    # a retry's time, from the spawn: its backoff (60 s, with up to 10 % jitter); other times
    # (now, a lease's end) are not compared
    shown = [
        (*r[:5], timedelta(seconds=60) <= r[5] <= timedelta(seconds=67) if r[1] == "s" else None)
        for r in hot
    ]
    return shown, kept


class Finished(RunnerHooks):
    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.outcomes: list[JobOutcome] = []
        self.all = asyncio.Event()

    def job_finished(self, job: JobInfo, outcome: JobOutcome, duration_s: float | None) -> None:
        self.outcomes.append(outcome)
        if len(self.outcomes) == self.expected:
            self.all.set()


async def test_drain_and_a_runner_leave_the_same_rows(
    sqlxmq_aconn: psycopg.AsyncConnection[Any], dsn: str
) -> None:
    await spawn_all(sqlxmq_aconn)
    ran = await drain(sqlxmq_aconn, REGISTRY)
    drained = await rows(sqlxmq_aconn)

    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute("CREATE TABLE kit_effects (job_id uuid, note text)")
        await spawn_all(conn)
        finished = Finished(expected=5)
        async with running(dsn, REGISTRY, hooks=[finished]):
            await asyncio.wait_for(finished.all.wait(), 30)
        by_runner = await rows(conn)

    assert sorted(r.outcome for r in ran) == sorted(finished.outcomes)
    assert sorted(finished.outcomes) == ["completed", "failed", "parked", "retrying", "retrying"]
    assert drained == by_runner
    hot, kept = drained
    errors = {(r[0], r[1]): r[4] for r in hot}
    assert errors[(send.name, "s")] in (
        "ValueError: undeliverable address bob@example.invalid",
        f"PayloadError: payload of job {send.name!r} is not a valid Email: Expected `str`, got "
        "`int` - at `$.to`",
    )
    assert errors[(boom.name, "f")] == "RuntimeError: boom"
    assert errors[(unknown.name, "n")].startswith(
        "waiting for a runner that knows the job name 'kit.unknown_to_the_registry'"
    )
    assert kept == [(send.name, "completed", 1, '{"message_id":"<hello@ada@example.com>"}')]
