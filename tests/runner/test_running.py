"""The runner runs jobs: the seed example, async and thread jobs, completion rules, context,
channel subscriptions, concurrency limits, delays and priorities."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
import pytest
import structlog
from psycopg_pool import AsyncConnectionPool

from sqlxmq_py import (
    BlockingCurrentJob,
    CurrentJob,
    JobRegistry,
    SchemaError,
    exists,
    job,
    spawn_many,
)

from ..helpers import PollSignals, Runner, count_jobs, db_clock, job_row, wait_until


async def test_seed_readme_example_runs_as_written(
    dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    finished = asyncio.Event()

    @job(channel_name="foo")
    async def example_job(current_job: CurrentJob) -> None:
        # Decode a JSON payload
        who: str | None = current_job.json()
        # Do some work
        print(f"Hello, {who or 'world'}!")
        # Mark the job as complete
        await current_job.complete()
        finished.set()

    async with AsyncConnectionPool(dsn, open=False) as pool:
        # Construct a job registry from our single job.
        registry = JobRegistry([example_job])
        # Here is where you can configure the registry
        # registry.set_error_handler(...)
        runner = await (
            registry
            # Create a job runner using the connection pool.
            .runner(pool)
            # Aim to keep 10-20 jobs running at a time.
            .set_concurrency(10, 20)
            # Start the job runner in the background.
            .run()
        )
        job_id = await (
            example_job.builder()
            # This is where we can override job configuration
            .set_channel_name("bar")
            .set_json("John")
            .spawn(pool)
        )
        await asyncio.wait_for(finished.wait(), 10)
        await runner.stop()
        assert not await exists(pool, job_id)
    assert "Hello, John!" in capsys.readouterr().out


async def test_async_and_thread_jobs_run_and_complete(
    dsn: str, conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    seen: list[tuple[str, Any, str]] = []
    done = asyncio.Event()
    loop = asyncio.get_running_loop()

    @job
    async def async_job(current_job: CurrentJob) -> None:
        seen.append(("async", current_job.json(), threading.current_thread().name))
        if len(seen) == 2:
            done.set()

    @job
    def thread_job(current_job: BlockingCurrentJob) -> None:
        assert isinstance(current_job, BlockingCurrentJob)
        seen.append(("thread", current_job.json(), threading.current_thread().name))
        if len(seen) == 2:
            loop.call_soon_threadsafe(done.set)

    async_id = async_job.builder().set_json({"a": 1}).spawn(conn)
    thread_id = thread_job.builder().set_json([2]).spawn(conn)
    conn.commit()
    async with runner([async_job, thread_job]):
        await asyncio.wait_for(done.wait(), 10)
        await wait_until(lambda: count_jobs(db) == 0)
    kinds = {kind: (payload, thread) for kind, payload, thread in seen}
    assert kinds["async"][0] == {"a": 1}
    assert kinds["async"][1] == threading.main_thread().name
    assert kinds["thread"][0] == [2]
    assert kinds["thread"][1].startswith("sqlxmq-job")
    assert not exists(db, async_id)
    assert not exists(db, thread_id)


async def test_current_job_exposes_its_data(conn: psycopg.Connection[Any], runner: Runner) -> None:
    got: dict[str, Any] = {}
    done = asyncio.Event()

    @job(channel_name="chan", retries=6)
    async def info(current_job: CurrentJob) -> None:
        got.update(
            id=current_job.id,
            name=current_job.name,
            attempt=current_job.attempt,
            max_attempts=current_job.max_attempts,
            channel_name=current_job.channel_name,
            channel_args=current_job.channel_args,
            raw_json=current_job.raw_json(),
            raw_bytes=current_job.raw_bytes(),
            pool=current_job.pool,
        )
        done.set()

    job_id = (
        info.builder()
        .set_channel_args("args")
        .set_raw_json('{"k": 1}')
        .set_raw_bytes(b"\x01")
        .spawn(conn)
    )
    conn.commit()
    async with runner([info]):
        await asyncio.wait_for(done.wait(), 10)
    assert got["id"] == job_id
    assert got["name"] == info.name
    assert got["attempt"] == 1
    assert got["max_attempts"] == 7
    assert (got["channel_name"], got["channel_args"]) == ("chan", "args")
    assert got["raw_json"] == '{"k": 1}'
    assert got["raw_bytes"] == b"\x01"
    assert isinstance(got["pool"], AsyncConnectionPool)


async def test_auto_complete_false_keeps_sqlxmq_manual_rule(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    attempts: list[int] = []
    second = asyncio.Event()

    @job(auto_complete=False, lease=0.5)
    async def manual(current_job: CurrentJob) -> None:
        attempts.append(current_job.attempt)
        if current_job.attempt == 2:
            await current_job.complete()
            second.set()
        # first attempt returns without completing: it must run again after its lease

    job_id = manual.builder().spawn(conn)
    conn.commit()
    with structlog.testing.capture_logs() as logs:
        async with runner([manual]):
            await asyncio.wait_for(second.wait(), 10)
    assert attempts == [1, 2]
    assert not exists(db, job_id)
    assert any(e["event"] == "job_returned_without_completing" for e in logs)


async def test_context_values_reach_jobs_that_ask_for_them(
    conn: psycopg.Connection[Any], runner: Runner
) -> None:
    @dataclass
    class Settings:
        greeting: str

    class Client:
        pass

    received: list[Any] = []
    done = asyncio.Event()

    @job
    async def with_context(current_job: CurrentJob, settings: Settings, client: Client) -> None:
        received.extend([settings.greeting, client])
        done.set()

    client = Client()
    registry = JobRegistry([with_context]).set_context(Settings("hi"), client)
    with_context.builder().spawn(conn)
    conn.commit()
    async with runner(registry):
        await asyncio.wait_for(done.wait(), 10)
    assert received == ["hi", client]


async def test_runner_only_runs_its_channels(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    ran: list[str] = []

    @job
    async def record(current_job: CurrentJob) -> None:
        ran.append(current_job.channel_name)

    spawn_many(conn, [record.builder().set_channel_name(c) for c in ["a", "b", "c", "a"]])
    conn.commit()
    async with runner([record], channel_names=["a", "c"]):
        await wait_until(lambda: count_jobs(db) == 1)
    assert sorted(ran) == ["a", "a", "c"]
    assert count_jobs(db, "channel_name = 'b'") == 1
    polls = PollSignals()
    async with runner([record], channel_names=[], hooks=[polls]) as handle:
        await asyncio.wait_for(polls.event.wait(), 10)  # it looked, and leased nothing
        assert polls.polls[0][0] == 0
        assert handle.num_running_jobs() == 0
    assert count_jobs(db) == 1


async def test_concurrency_never_exceeds_max(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    running = 0
    peak = 0

    @job
    async def busy(current_job: CurrentJob) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1

    spawn_many(conn, [busy.builder() for _ in range(200)])
    conn.commit()
    async with runner([busy], concurrency=(3, 5)):
        await wait_until(lambda: count_jobs(db) == 0, timeout=20)
    assert peak == 5


async def test_delayed_jobs_wait_for_their_time(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    started: list[datetime] = []
    done = asyncio.Event()

    @job
    async def later(current_job: CurrentJob) -> None:
        started.append(db_clock(db))
        done.set()

    # the poll timer never fires within the test: the runner must wake for the run time
    async with runner([later], poll_interval=3600):
        job_id = later.builder().set_delay(0.7).spawn(conn)
        conn.commit()
        row = job_row(db, job_id)
        assert row is not None
        assert row["state"] == "s"
        await asyncio.wait_for(done.wait(), 30)
    assert started[0] >= row["attempt_at"]  # not before its time (one clock: the database's)


async def test_priority_orders_jobs_within_a_group(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    order: list[int] = []

    @job
    async def prioritised(current_job: CurrentJob) -> None:
        order.append(current_job.json())

    spawn_many(conn, [prioritised.builder().set_json(p).set_priority(p) for p in [1, 5, -3, 9, 0]])
    conn.commit()
    async with runner([prioritised], concurrency=(1, 1)):
        await wait_until(lambda: count_jobs(db) == 0)
    assert order == [9, 5, 1, 0, -3]


async def test_thread_job_completes_in_its_own_transaction(
    dsn: str, conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    db.execute("CREATE TABLE effects (job_id uuid PRIMARY KEY)")

    @job
    def transactional(current_job: BlockingCurrentJob) -> None:
        with psycopg.connect(dsn) as own, own.transaction():
            own.execute("INSERT INTO effects VALUES (%s)", (current_job.id,))
            current_job.complete(own)

    job_id = transactional.builder().spawn(conn)
    conn.commit()
    async with runner([transactional]):
        await wait_until(lambda: not exists(db, job_id))
    assert db.execute("SELECT job_id FROM effects").fetchall() == [(job_id,)]


async def test_runner_refuses_a_database_without_the_schema(empty_dsn: str) -> None:
    @job
    async def anything(current_job: CurrentJob) -> None:
        pass

    with pytest.raises(SchemaError, match="migrate"):
        await JobRegistry([anything]).runner(empty_dsn).run()


async def test_job_row_is_leased_while_running(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    inside = asyncio.Event()
    release = asyncio.Event()

    @job
    async def holder(current_job: CurrentJob) -> None:
        inside.set()
        await release.wait()

    job_id = holder.builder().spawn(conn)
    conn.commit()
    async with runner([holder]):
        await asyncio.wait_for(inside.wait(), 10)
        row = job_row(db, job_id)
        assert row is not None
        assert row["state"] == "l"
        assert row["attempts"] == 1
        assert row["lease_token"] is not None
        release.set()
        await wait_until(lambda: not exists(db, job_id))
