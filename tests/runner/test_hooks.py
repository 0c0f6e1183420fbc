"""Runner hooks see every outcome; spawn hooks and headers carry metadata from spawn to run."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

import psycopg

from sqlxmq_py import (
    BlockingCurrentJob,
    CurrentJob,
    JobInfo,
    JobRegistry,
    exists,
    job,
    spawn_many,
)
from sqlxmq_py.hooks import JobOutcome, RunnerHooks, add_spawn_hook, remove_spawn_hook

from ..helpers import Runner, job_row, wait_until

current_trace: contextvars.ContextVar[str] = contextvars.ContextVar("current_trace", default="")


class Recorder(RunnerHooks):
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def job_started(self, job: JobInfo) -> None:
        self.events.append(("started", job.json()))

    @contextlib.contextmanager
    def running(self, job: JobInfo) -> Iterator[None]:
        token = current_trace.set(job.headers.get("trace", ""))
        try:
            yield
        finally:
            current_trace.reset(token)

    def job_finished(self, job: JobInfo, outcome: JobOutcome, duration_s: float | None) -> None:
        self.events.append((outcome, job.json()))

    def polled(self, leased: int, wanted: int) -> None:
        raise RuntimeError("a broken hook must not break the runner")


async def test_hooks_see_outcomes_and_wrap_async_and_thread_jobs(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    seen_traces: list[str] = []

    @job(retries=0)
    async def traced(current_job: CurrentJob) -> None:
        seen_traces.append(current_trace.get())
        if current_job.json() == "bad":
            raise ValueError("bad")

    @job
    def traced_thread(current_job: BlockingCurrentJob) -> None:
        seen_traces.append(current_trace.get())  # the hook's context reaches the thread

    ids = spawn_many(
        conn,
        [
            traced.builder().set_json("ok").set_header("trace", "t-1"),
            traced.builder().set_json("bad").set_header("trace", "t-2"),
            traced_thread.builder().set_json("thread").set_header("trace", "t-3"),
        ],
    )
    conn.commit()
    recorder = Recorder()
    registry = JobRegistry([traced, traced_thread])
    async with runner(registry, hooks=[recorder]) as handle:
        assert handle is not None
        await wait_until(lambda: not exists(db, ids[0]) and not exists(db, ids[2]))
        await wait_until(lambda: (job_row(db, ids[1]) or {}).get("state") == "f")
        await wait_until(lambda: len(recorder.events) == 6)
    assert sorted(seen_traces) == ["t-1", "t-2", "t-3"]
    assert sorted(recorder.events) == sorted(
        [
            ("started", "ok"),
            ("started", "bad"),
            ("started", "thread"),
            ("completed", "ok"),
            ("failed", "bad"),
            ("completed", "thread"),
        ]
    )


async def test_spawn_hooks_add_headers(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    @job
    async def anything(current_job: CurrentJob) -> None:
        pass

    def stamp(builder: Any) -> None:
        builder.set_header("traceparent", "00-abc-def-01")

    add_spawn_hook(stamp)
    try:
        job_id = anything.builder().set_header("tenant", "acme").spawn(conn)
    finally:
        remove_spawn_hook(stamp)
    untouched = anything.builder().spawn(conn)
    conn.commit()
    headers = db.execute("SELECT headers FROM mq_payloads WHERE id = %s", (job_id,)).fetchone()
    assert headers == ({"tenant": "acme", "traceparent": "00-abc-def-01"},)
    none = db.execute("SELECT headers FROM mq_payloads WHERE id = %s", (untouched,)).fetchone()
    assert none == (None,)


async def test_runners_count_finished_attempts_per_minute(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    from datetime import UTC, datetime, timedelta

    from sqlxmq_py.admin import throughput

    @job(retries=1, backoff=0)
    async def counted(current_job: CurrentJob) -> None:
        if current_job.json() == "flaky" and current_job.attempt == 1:
            raise RuntimeError("once")
        if current_job.json() == "broken":
            raise RuntimeError("always")

    before = datetime.now(UTC) - timedelta(minutes=1)
    spawn_many(conn, [counted.builder().set_json(v) for v in ["ok", "ok", "flaky", "broken"]])
    conn.commit()
    async with runner([counted]):
        await wait_until(
            lambda: sum(b.completed + b.failed for b in throughput(db, before)) == 4, timeout=15
        )
    buckets = throughput(db, before)
    assert sum(b.completed for b in buckets) == 3
    assert sum(b.retried for b in buckets) == 2  # flaky once, broken once before failing
    assert sum(b.failed for b in buckets) == 1
    assert throughput(db, before, channel_name="elsewhere") == []


async def test_a_job_completed_in_its_own_transaction_is_reported_completed(
    dsn: str, conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    @job
    async def own_tx(current_job: CurrentJob) -> None:
        async with await psycopg.AsyncConnection.connect(dsn) as own, own.transaction():
            await current_job.complete(own)

    recorder = Recorder()
    job_id = own_tx.builder().set_json("mine").spawn(conn)
    conn.commit()
    async with runner(JobRegistry([own_tx]), hooks=[recorder]):
        await wait_until(lambda: not exists(db, job_id))
        await wait_until(lambda: ("completed", "mine") in recorder.events)
