"""Concurrency races: ordered chains under concurrent spawn, cancel and completion; checkpoints
and completions racing lease expiry; a runner that leases again a job it still runs."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import threading
import time
from collections import Counter
from datetime import timedelta
from typing import Any

import psycopg
import pytest
import structlog

from sqlxmq_py import (
    BlockingCurrentJob,
    Checkpoint,
    CurrentJob,
    JobRegistry,
    LeaseLostError,
    exists,
    job,
    spawn_many,
)
from sqlxmq_py.sql import query

from ..helpers import count_jobs, job_row, lease_renewed, running, wait_until


def expire_now(db: psycopg.Connection[Any], job_id: Any) -> None:
    """What another runner's maintenance does once a lease has run out: the job is ready again."""
    with db.transaction():
        db.execute(
            "UPDATE mq_jobs SET attempt_at = now() - interval '1 second' WHERE id = %s", (job_id,)
        )
        expired = db.execute(query("expire_leases")).fetchall()
    assert [row[0] for row in expired] == [job_id]


async def test_a_job_leased_again_by_the_runner_still_running_it_runs_each_attempt_once(
    dsn: str, conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    attempts: list[int] = []
    first_inside = asyncio.Event()
    second_inside = asyncio.Event()
    release = asyncio.Event()

    @job(lease=1.0)
    async def stalls(current_job: CurrentJob) -> None:
        attempts.append(current_job.attempt)
        if current_job.attempt == 1:
            first_inside.set()
            await second_inside.wait()  # attempt 1 ends while attempt 2 runs
        else:
            second_inside.set()
            await release.wait()  # three leases: the runner must keep renewing this one

    job_id = stalls.builder().spawn(conn)
    conn.commit()
    with structlog.testing.capture_logs() as logs:
        async with running(dsn, JobRegistry([stalls]), poll_interval=0.2):
            await asyncio.wait_for(first_inside.wait(), 10)
            # attempt 1 lost its lease (its runner could not renew it in time, say): the job is
            # ready again, and the same runner leases it while attempt 1 is still running
            expire_now(db, job_id)
            await asyncio.wait_for(second_inside.wait(), 10)
            await lease_renewed(db, job_id, timedelta(seconds=3))
            release.set()
            await wait_until(lambda: not exists(db, job_id), timeout=15)
    assert attempts == [1, 2]  # attempt 2 kept its lease and was completed
    completed = [e for e in logs if e["event"] == "job_completed"]
    assert [e["attempt"] for e in completed] == [2]


# --- ordered chains under concurrent spawn, cancel and completion ---

CANCEL = """
WITH gone AS (
    DELETE FROM mq_jobs WHERE id = %s AND state = 'b' RETURNING id
), payloads AS (
    DELETE FROM mq_payloads AS p USING gone WHERE p.id = gone.id
)
SELECT id FROM gone
"""


async def test_ordered_chains_under_concurrent_spawn_cancel_and_completion(
    dsn: str, db: psycopg.Connection[Any]
) -> None:
    chains = ["a", "b", "c"]
    started: dict[str, list[Any]] = {c: [] for c in chains}
    in_flight: Counter[str] = Counter()
    overlaps: list[str] = []

    @job(ordered=True, channel_name="chain")
    async def link(current_job: CurrentJob) -> None:
        chain = current_job.channel_args
        in_flight[chain] += 1
        if in_flight[chain] > 1:
            overlaps.append(chain)
        started[chain].append(current_job.id)
        await asyncio.sleep(0.001 * (current_job.json() % 4))
        in_flight[chain] -= 1

    spawned: list[tuple[str, int, Any]] = []  # (chain, ord_seq, id) of committed spawns
    rolled_back: list[Any] = []
    cancelled: list[Any] = []
    lock = threading.Lock()
    stop_cancelling = threading.Event()

    def spawner(seed: int) -> None:
        rng = random.Random(seed)
        with psycopg.connect(dsn) as c:
            for n in range(60):
                batch = [
                    link.builder().set_channel_args(rng.choice(chains)).set_json(n)
                    for _ in range(rng.randint(1, 3))
                ]
                ids = spawn_many(c, batch)
                rows = c.execute(
                    "SELECT channel_args, ord_seq, id FROM mq_jobs WHERE id = ANY(%s)", (ids,)
                ).fetchall()
                if rng.random() < 0.1:
                    c.rollback()
                    with lock:
                        rolled_back.extend(ids)
                else:
                    c.commit()
                    with lock:
                        spawned.extend(rows)

    def canceller(seed: int) -> None:
        rng = random.Random(seed)
        with psycopg.connect(dsn, autocommit=True) as c:
            while not stop_cancelling.is_set():
                row = c.execute(
                    "SELECT id FROM mq_jobs WHERE state = 'b' ORDER BY random() LIMIT 1"
                ).fetchone()
                if row is not None and c.execute(CANCEL, row).fetchone() is not None:
                    with lock:
                        cancelled.append(row[0])
                time.sleep(rng.uniform(0, 0.01))

    with structlog.testing.capture_logs() as logs:
        async with running(dsn, JobRegistry([link]), concurrency=(8, 16), poll_interval=0.2):
            cancelling = asyncio.create_task(asyncio.to_thread(canceller, 99))
            await asyncio.gather(*(asyncio.to_thread(spawner, seed) for seed in range(4)))
            stop_cancelling.set()
            await cancelling
            await wait_until(lambda: count_jobs(db) == 0, timeout=30)  # nothing stuck blocked
    assert overlaps == []  # never two jobs of one chain at once
    gone = set(cancelled)
    for chain in chains:
        expected = [i for c, _, i in sorted(spawned, key=lambda r: r[1]) if c == chain]
        assert started[chain] == [i for i in expected if i not in gone], chain
    assert not set(rolled_back) & {i for ids in started.values() for i in ids}
    unblocked = sum(e["count"] for e in logs if e["event"] == "ordered_jobs_unblocked")
    print(
        f"ordered: {len(spawned)} spawned, {len(cancelled)} cancelled, {len(rolled_back)} rolled "
        f"back, {unblocked} heads promoted by the sweep"
    )
    assert cancelled  # the race did happen


# --- checkpoints and completions racing lease expiry ---


async def test_checkpoint_racing_lease_expiry_applies_under_the_lease_or_raises(
    dsn: str, conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    db.execute("CREATE TABLE effects (attempt int, step int)")
    ok: list[tuple[int, int]] = []  # (attempt, step) of checkpoints that were applied
    lost: list[tuple[int, int]] = []
    started_with: dict[int, Any] = {}
    last_granting_attempt = 8
    rng = random.Random(7)

    @job(lease=0.3, retries=0, backoff=0)
    async def racer(current_job: CurrentJob) -> None:
        attempt = current_job.attempt
        started_with[attempt] = current_job.json()
        for step in itertools.count():
            checkpoint = Checkpoint().set_json({"attempt": attempt, "step": step})
            if step == 0 and attempt < last_granting_attempt:
                checkpoint.set_extra_retries(1)  # progress earns one more attempt
            try:
                if step % 2:  # in the job's own transaction, with an effect
                    async with current_job.pool.connection() as c, c.transaction():
                        await c.execute("INSERT INTO effects VALUES (%s, %s)", (attempt, step))
                        await current_job.checkpoint(checkpoint, conn=c)
                else:  # on the runner's connection
                    await current_job.checkpoint(checkpoint)
            except LeaseLostError:
                lost.append((attempt, step))
                raise
            ok.append((attempt, step))
            await asyncio.sleep(rng.uniform(0, 0.04))

    job_id = racer.builder().set_json("original").spawn(conn)
    conn.commit()
    registry = JobRegistry([racer])
    async with (
        running(dsn, registry, keep_alive=False, poll_interval=0.2),
        running(dsn, registry, keep_alive=False, poll_interval=0.2),
    ):
        await wait_until(lambda: (job_row(db, job_id) or {}).get("state") == "f", timeout=30)
    row = job_row(db, job_id)
    assert row is not None

    def last_ok_before(attempt: int) -> Any:
        earlier = [cp for cp in ok if cp[0] < attempt]
        if not earlier:
            return "original"
        a, s = max(earlier)
        return {"attempt": a, "step": s}

    # a stale attempt never changed the job under a newer lease: each attempt started from the
    # last checkpoint applied under an earlier lease, and the row holds the last one applied
    for attempt, payload in started_with.items():
        assert payload == last_ok_before(attempt), attempt
    assert json.loads(row["payload_json"]) == last_ok_before(row["attempts"] + 1)
    # extra attempts were granted only by applied checkpoints, and the failed job was not revived
    granted = sum(1 for a, s in ok if s == 0 and a < last_granting_attempt)
    assert row["max_attempts"] == 1 + granted
    assert row["attempts"] == row["max_attempts"]
    assert sorted(started_with) == list(range(1, row["attempts"] + 1))
    # a refused checkpoint was the attempt's last word, and its transaction rolled back
    for attempt, step in lost:
        assert not [s for a, s in ok if a == attempt and s > step]
    effects = set(db.execute("SELECT attempt, step FROM effects").fetchall())
    assert effects == {cp for cp in ok if cp[1] % 2}
    print(f"checkpoints: {len(ok)} applied, {len(lost)} refused, {row['attempts']} attempts")
    assert lost


@pytest.mark.parametrize("kind", ["async", "thread"])
async def test_complete_in_the_jobs_transaction_racing_lease_expiry_commits_once(
    dsn: str, conn: psycopg.Connection[Any], db: psycopg.Connection[Any], kind: str
) -> None:
    db.execute("CREATE TABLE effects (job_id uuid, attempt int)")
    outcomes: list[tuple[Any, int, str]] = []
    rng = random.Random(11)

    @job(lease=0.2, retries=30, backoff=0)
    async def racing(current_job: CurrentJob) -> None:
        await asyncio.sleep(rng.uniform(0.1, 0.3))  # about as long as the lease
        try:
            async with current_job.pool.connection() as c, c.transaction():
                await c.execute(
                    "INSERT INTO effects VALUES (%s, %s)", (current_job.id, current_job.attempt)
                )
                await current_job.complete(c)
        except LeaseLostError:
            outcomes.append((current_job.id, current_job.attempt, "lost"))
            raise
        outcomes.append((current_job.id, current_job.attempt, "completed"))

    @job(name="racing", lease=0.2, retries=30, backoff=0)
    def racing_thread(current_job: BlockingCurrentJob) -> None:
        time.sleep(rng.uniform(0.1, 0.3))
        try:
            with psycopg.connect(dsn) as c, c.transaction():
                c.execute(
                    "INSERT INTO effects VALUES (%s, %s)", (current_job.id, current_job.attempt)
                )
                current_job.complete(c)
        except LeaseLostError:
            outcomes.append((current_job.id, current_job.attempt, "lost"))
            raise
        outcomes.append((current_job.id, current_job.attempt, "completed"))

    named = racing if kind == "async" else racing_thread
    ids = spawn_many(conn, [named.builder() for _ in range(100)])
    conn.commit()
    registry = JobRegistry([named])
    async with (
        running(dsn, registry, concurrency=(8, 16), keep_alive=False, poll_interval=0.2),
        running(dsn, registry, concurrency=(8, 16), keep_alive=False, poll_interval=0.2),
    ):
        await wait_until(lambda: count_jobs(db) == 0, timeout=60)
    completed = {(i, a) for i, a, outcome in outcomes if outcome == "completed"}
    lost = [(i, a) for i, a, outcome in outcomes if outcome == "lost"]
    assert sorted(i for i, _ in completed) == sorted(ids)  # each job completed exactly once
    effects = db.execute("SELECT job_id, attempt FROM effects").fetchall()
    assert sorted(effects) == sorted(completed)  # the losers' effects rolled back
    print(f"completions ({kind}): {len(completed)} committed, {len(lost)} refused")
    assert lost  # the race did happen
