"""Runner processes that are killed or told to stop: nothing is lost, effects happen once."""

from __future__ import annotations

import random
import signal
import time
from typing import Any

import psycopg
import pytest

from sqlxmq_py import exists, spawn_many

from ..helpers import count_jobs, wait_until
from .conftest import Spawner
from .worker import RELEASE_LOCK, effect, hang_first, slow_thread_job


@pytest.fixture
def tables(db: psycopg.Connection[Any]) -> None:
    db.execute("CREATE TABLE starts (job_id uuid, attempt int)")
    db.execute("CREATE TABLE effects (job_id uuid, attempt int)")


@pytest.mark.usefixtures("tables")
async def test_sigkilled_runner_job_runs_again_and_its_effect_commits_once(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], worker_process: Spawner
) -> None:
    job_id = hang_first.builder().spawn(conn)
    conn.commit()
    first = worker_process()
    await wait_until(lambda: db.execute("SELECT count(*) FROM starts").fetchone() == (1,))
    first.signal(signal.SIGKILL)
    first.wait()
    worker_process()  # a new runner picks the job up once its 1 s lease has expired
    await wait_until(lambda: not exists(db, job_id), timeout=20)
    assert db.execute("SELECT attempt FROM starts ORDER BY attempt").fetchall() == [(1,), (2,)]
    assert db.execute("SELECT job_id, attempt FROM effects").fetchall() == [(job_id, 2)]


@pytest.mark.usefixtures("tables")
async def test_sigterm_lets_the_running_job_finish_and_exits_cleanly(
    dsn: str, conn: psycopg.Connection[Any], db: psycopg.Connection[Any], worker_process: Spawner
) -> None:
    proc = worker_process()
    # the job runs until the test releases this lock: it is running when SIGTERM arrives
    db.execute("SELECT pg_advisory_lock(%s)", (RELEASE_LOCK,))
    job_id = slow_thread_job.builder().set_json({"dsn": dsn}).spawn(conn)
    conn.commit()
    await wait_until(lambda: db.execute("SELECT count(*) FROM starts").fetchone() == (1,))
    proc.signal(signal.SIGTERM)
    proc.wait_line("stopping")  # the runner is stopping, and waits for the job
    assert exists(db, job_id)
    db.execute("SELECT pg_advisory_unlock(%s)", (RELEASE_LOCK,))
    assert proc.wait() == 0
    assert proc.stdout().split() == ["ready", "stopping", "stopped"]
    assert not exists(db, job_id)  # finished and completed before the process exited
    assert db.execute("SELECT count(*) FROM mq_listeners").fetchone() == (0,)


@pytest.mark.slow
@pytest.mark.usefixtures("tables")
def test_chaos_sigkill_while_draining_loses_nothing_and_commits_effects_once(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], worker_process: Spawner
) -> None:
    total = 10_000
    ids = spawn_many(conn, [effect.builder().set_json(i) for i in range(total)])
    conn.commit()
    rng = random.Random(1234)
    workers = [worker_process("--concurrency", "20", "40") for _ in range(3)]
    kills = 0
    deadline = time.monotonic() + 240
    while count_jobs(db) > 0:
        assert time.monotonic() < deadline, f"{count_jobs(db)} jobs left after 240 s"
        time.sleep(rng.uniform(0.2, 0.5))  # a random moment of the drain (fuzzing the kill)
        victim = rng.randrange(len(workers))
        workers[victim].signal(signal.SIGKILL)
        workers[victim].wait()
        kills += 1
        workers[victim] = worker_process("--concurrency", "20", "40")
    effects = db.execute("SELECT job_id, count(*) FROM effects GROUP BY job_id").fetchall()
    assert len(effects) == total  # every job had its effect
    assert {n for _, n in effects} == {1}  # exactly once
    assert {job_id for job_id, _ in effects} == set(ids)
    assert count_jobs(db) == 0  # nothing left leased, failed or lost
    assert kills >= 3
    print(f"chaos: {total} jobs, 3 runners, {kills} SIGKILLs, 0 lost, 0 duplicate effects")
