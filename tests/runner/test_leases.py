"""Leases: renewal from a thread (even when the loop is blocked), expiry after a crash, fencing
of stale workers, exactly-once completion in the job's transaction, keep-alive and checkpoints."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta
from typing import Any

import psycopg
import pytest
import structlog

from sqlxmq_py import (
    Checkpoint,
    CurrentJob,
    JobRegistry,
    LeaseLostError,
    exists,
    job,
)
from sqlxmq_py.sql import query

from ..helpers import (
    Runner,
    db_clock,
    job_row,
    lease_expiry,
    lease_params,
    lease_renewed,
    maintenance_passed,
    wait_until,
)


def _expire_loop(dsn: str, stop: threading.Event, expired: list[Any]) -> None:
    """What another runner's maintenance would do, from another thread, while ours is blocked."""
    with psycopg.connect(dsn, autocommit=True) as c:
        while not stop.is_set():
            expired.extend(c.execute(query("expire_leases")).fetchall())
            time.sleep(0.05)


@pytest.mark.parametrize("keep_alive", [True, False])
async def test_blocked_event_loop_does_not_lose_the_lease(
    dsn: str,
    conn: psycopg.Connection[Any],
    db: psycopg.Connection[Any],
    runner: Runner,
    keep_alive: bool,
) -> None:
    attempts: list[int] = []

    @job(lease=0.6)
    async def blocks_the_loop(current_job: CurrentJob) -> None:
        attempts.append(current_job.attempt)
        if current_job.attempt == 1:
            time.sleep(2.0)  # noqa: ASYNC251 - deliberately blocks the loop for three leases

    job_id = blocks_the_loop.builder().spawn(conn)
    conn.commit()
    stop, expired = threading.Event(), []
    expirer = threading.Thread(target=_expire_loop, args=(dsn, stop, expired))
    expirer.start()
    try:
        async with runner([blocks_the_loop], keep_alive=keep_alive):
            await wait_until(lambda: not exists(db, job_id), timeout=15)
    finally:
        stop.set()
        expirer.join()
    if keep_alive:
        assert expired == []  # the lease keeper renewed it from its own thread
        assert attempts == [1]
    else:
        assert len(expired) == 1  # the control case: without renewal the lease does expire
        assert attempts == [1, 2]


async def test_long_job_with_short_lease_runs_once(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    attempts: list[int] = []
    release = asyncio.Event()

    @job(lease=0.5)
    async def slow(current_job: CurrentJob) -> None:
        attempts.append(current_job.attempt)
        await release.wait()

    job_id = slow.builder().spawn(conn)
    conn.commit()
    async with runner([slow]):
        # the runner renewed the lease past three of its terms, and maintenance (every 0.1 s)
        # looked at it after its first term had passed
        await lease_renewed(db, job_id, timedelta(seconds=1.5))
        await maintenance_passed(db)
        release.set()
        await wait_until(lambda: not exists(db, job_id), timeout=15)
    assert attempts == [1]


async def test_exactly_once_effects_when_completing_in_the_jobs_transaction(
    dsn: str, conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    db.execute("CREATE TABLE effects (job_id uuid, attempt int)")
    first_inside = asyncio.Event()
    second_done = asyncio.Event()
    outcomes: dict[int, str] = {}

    @job(lease=0.4)
    async def transfer(current_job: CurrentJob) -> None:
        async with await psycopg.AsyncConnection.connect(dsn) as own, own.transaction():
            await own.execute(
                "INSERT INTO effects VALUES (%s, %s)", (current_job.id, current_job.attempt)
            )
            if current_job.attempt == 1:
                first_inside.set()
                await second_done.wait()  # stalls past its lease: attempt 2 takes over
            try:
                await current_job.complete(own)
                outcomes[current_job.attempt] = "completed"
            except LeaseLostError:
                outcomes[current_job.attempt] = "lease lost"
                raise
        if current_job.attempt == 2:
            second_done.set()

    job_id = transfer.builder().spawn(conn)
    conn.commit()
    async with runner([transfer], keep_alive=False):
        await asyncio.wait_for(second_done.wait(), 15)
        await wait_until(lambda: len(outcomes) == 2)
    assert outcomes == {2: "completed", 1: "lease lost"}
    assert db.execute("SELECT attempt FROM effects").fetchall() == [(2,)]  # effect once
    assert not exists(db, job_id)


async def test_crash_makes_the_job_ready_again_after_its_lease(
    dsn: str, conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    attempts: list[int] = []

    @job(retries=1, lease=0.3)
    async def survivor(current_job: CurrentJob) -> None:
        attempts.append(current_job.attempt)

    job_id = survivor.builder().spawn(conn)
    conn.commit()
    _lease_and_vanish(dsn)  # a worker that leased the job and then died
    async with runner([survivor]):
        await wait_until(lambda: not exists(db, job_id))
    assert attempts == [2]


async def test_crash_on_the_final_attempt_leaves_the_job_failed(
    dsn: str, conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    @job(retries=0, lease=0.3)
    async def last_chance(current_job: CurrentJob) -> None:
        raise AssertionError("must not run: its only attempt was used by the crashed worker")

    job_id = last_chance.builder().spawn(conn)
    conn.commit()
    _lease_and_vanish(dsn)
    with structlog.testing.capture_logs() as logs:
        async with runner([last_chance]):
            await wait_until(lambda: (job_row(db, job_id) or {}).get("state") == "f")
    row = job_row(db, job_id)
    assert row is not None
    assert row["last_error"] == "lease expired during attempt 1"
    assert row["attempts"] == 1
    expired = [e for e in logs if e["event"] == "lease_expired"]
    assert len(expired) == 1
    assert expired[0]["final"] is True


def _lease_and_vanish(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as c:
        rows = c.execute(query("lease"), lease_params(default_lease="1 s")).fetchall()
    assert len(rows) == 1


async def test_keep_alive_extends_the_lease(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    attempts: list[int] = []
    extended = asyncio.Event()
    release = asyncio.Event()

    @job(lease=0.3)
    async def extends(current_job: CurrentJob) -> None:
        attempts.append(current_job.attempt)
        await current_job.keep_alive(5)
        extended.set()
        await release.wait()

    job_id = extends.builder().spawn(conn)
    conn.commit()
    async with runner([extends], keep_alive=False):
        await asyncio.wait_for(extended.wait(), 10)
        # past the 0.3 s lease it was leased with, maintenance looked at it (and left it)
        leased_until = lease_expiry(db, job_id)
        assert leased_until is not None
        await wait_until(lambda: db_clock(db) > leased_until - timedelta(seconds=4.6))
        await maintenance_passed(db)
        assert lease_expiry(db, job_id) == leased_until
        release.set()
        await wait_until(lambda: not exists(db, job_id))
    assert attempts == [1]


async def test_checkpoint_payload_is_seen_by_the_retry(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    seen: list[Any] = []

    @job(retries=1, backoff=0)
    async def resumable(current_job: CurrentJob) -> None:
        seen.append((current_job.json(), current_job.raw_bytes()))
        if current_job.attempt == 1:
            await current_job.checkpoint(Checkpoint().set_json({"step": 5}).set_raw_bytes(b"cp"))
            raise RuntimeError("crash after checkpoint")

    job_id = resumable.builder().set_json({"step": 0}).spawn(conn)
    conn.commit()
    async with runner([resumable]):
        await wait_until(lambda: not exists(db, job_id))
    assert seen == [({"step": 0}, None), ({"step": 5}, b"cp")]


async def test_checkpoint_in_a_rolled_back_transaction_is_not_applied(
    dsn: str, conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    seen: list[Any] = []

    @job(retries=1, backoff=0)
    async def careful(current_job: CurrentJob) -> None:
        seen.append(current_job.json())
        if current_job.attempt == 1:
            async with await psycopg.AsyncConnection.connect(dsn) as own:
                await current_job.checkpoint(Checkpoint().set_json("saved"), conn=own)
                await own.rollback()
            raise RuntimeError("fail")

    job_id = careful.builder().set_json("original").spawn(conn)
    conn.commit()
    async with runner([careful]):
        await wait_until(lambda: not exists(db, job_id))
    assert seen == ["original", "original"]


async def test_checkpoint_extra_retries_and_no_revival_of_failed_jobs(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    kept: list[CurrentJob] = []

    @job(retries=0, backoff=0)
    async def progressing(current_job: CurrentJob) -> None:
        kept.append(current_job)
        if current_job.attempt == 1:
            await current_job.checkpoint(Checkpoint().set_extra_retries(1))
        raise RuntimeError("still failing")

    job_id = progressing.builder().spawn(conn)
    conn.commit()
    async with runner([progressing]):
        await wait_until(lambda: (job_row(db, job_id) or {}).get("state") == "f")
        assert [k.attempt for k in kept] == [1, 2]  # the extra retry was granted
        # a late checkpoint from an old attempt must not revive the failed job
        with pytest.raises(LeaseLostError):
            await kept[-1].checkpoint(Checkpoint().set_extra_retries(10))
        with pytest.raises(LeaseLostError):
            await kept[-1].keep_alive(10)
    row = job_row(db, job_id)
    assert row is not None
    assert row["state"] == "f"
    assert row["max_attempts"] == 2


async def test_lost_lease_is_noticed_by_the_renewal(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    inside = asyncio.Event()
    flags: list[bool] = []

    @job(lease=0.3)
    async def watched(current_job: CurrentJob) -> None:
        if current_job.attempt > 1:
            return
        inside.set()
        await wait_until(lambda: current_job.lease_lost, timeout=10)
        flags.append(current_job.lease_lost)

    job_id = watched.builder().spawn(conn)
    conn.commit()
    with structlog.testing.capture_logs() as logs:
        async with runner([watched]):
            await asyncio.wait_for(inside.wait(), 10)
            db.execute(
                "UPDATE mq_jobs SET lease_token = gen_random_uuid() WHERE id = %s", (job_id,)
            )
            await wait_until(lambda: flags == [True])
    assert any(e["event"] == "lease_lost" and e["action"] == "renew" for e in logs)
    # the attempt ends knowing its lease is gone: no completion is tried, one line says so
    assert [e["action"] for e in logs if e["event"] == "lease_lost"] == ["renew", "finish"]


async def test_complete_with_a_lost_lease_raises_and_rolls_back(
    dsn: str, conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    db.execute("CREATE TABLE effects (n int)")
    results: list[str] = []

    @job(retries=0)
    async def loses(current_job: CurrentJob) -> None:
        db.execute(
            "UPDATE mq_jobs SET lease_token = gen_random_uuid() WHERE id = %s", (current_job.id,)
        )
        try:
            async with await psycopg.AsyncConnection.connect(dsn) as own, own.transaction():
                await own.execute("INSERT INTO effects VALUES (1)")
                await current_job.complete(own)
        except LeaseLostError:
            results.append("raised")

    loses.builder().spawn(conn)
    conn.commit()
    async with runner([loses]):
        await wait_until(lambda: results == ["raised"])
    assert db.execute("SELECT count(*) FROM effects").fetchone() == (0,)


@pytest.mark.parametrize("durable", [False, True])
def test_a_lease_skips_the_disk_flush_for_its_own_transaction_only(
    conn: psycopg.Connection[Any], durable: bool
) -> None:
    @job
    async def quick(current_job: CurrentJob) -> None:
        pass

    quick.builder().spawn(conn)
    conn.commit()
    conn.execute("SET synchronous_commit TO local")  # the session's own, not the default
    conn.commit()
    params = lease_params(durable=durable)
    assert len(conn.execute(query("lease"), params).fetchall()) == 1
    # what this transaction's commit will do (a runner's lease is a transaction of its own)
    expected = "local" if durable else "off"
    assert conn.execute("SHOW synchronous_commit").fetchone() == (expected,)
    conn.commit()
    # the session is untouched: behind a pooler in transaction mode, nobody else inherits it
    assert conn.execute("SHOW synchronous_commit").fetchone() == ("local",)
    conn.rollback()
    # a lease statement that leases nothing writes nothing and changes nothing
    assert conn.execute(query("lease"), params).fetchall() == []
    assert conn.execute("SHOW synchronous_commit").fetchone() == ("local",)


@pytest.mark.parametrize("durable", [False, True])
async def test_runners_run_jobs_with_and_without_durable_leases(
    dsn: str, conn: psycopg.Connection[Any], durable: bool
) -> None:
    ran = asyncio.Event()

    @job
    async def quick(current_job: CurrentJob) -> None:
        ran.set()

    options = JobRegistry([quick]).runner(dsn).set_durable_leases(durable)
    async with await options.run():
        quick.builder().spawn(conn)
        conn.commit()
        await asyncio.wait_for(ran.wait(), 10)
