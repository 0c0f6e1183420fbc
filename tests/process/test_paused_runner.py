"""A runner process paused at any moment (SIGSTOP: a job that blocks its event loop, a stopped
container) must not stall the upkeep of the others (issue 9.10): its maintenance lock is held
by one statement on the server, never across a pause of its process."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import uuid
from typing import Any

import psycopg

from sqlxmq_py import CurrentJob, JobRegistry, job

from ..helpers import running, wait_until
from .conftest import Spawner


@job
async def unused(current_job: CurrentJob) -> None:
    pass


def plant_expired_lease(db: psycopg.Connection[Any]) -> uuid.UUID:
    """A job whose runner died on its last attempt: leased, its lease expired a second ago."""
    job_id = uuid.uuid4()
    with db.transaction():
        db.execute(
            "INSERT INTO mq_payloads (id, name, retry_backoff) VALUES (%s, 'orphan', '1 s')",
            (job_id,),
        )
        db.execute(
            "INSERT INTO mq_jobs (id, channel_name, state, attempts, max_attempts, lease_token,"
            " attempt_at) VALUES (%s, 'nobody', 'l', 1, 1, gen_random_uuid(),"
            " now() - interval '1 second')",
            (job_id,),
        )
    return job_id


def state_of(db: psycopg.Connection[Any], job_id: uuid.UUID) -> str:
    row = db.execute("SELECT state::text FROM mq_jobs WHERE id = %s", (job_id,)).fetchone()
    return "gone" if row is None else str(row[0])


async def test_a_paused_runner_never_stalls_lease_expiry_for_the_others(
    dsn: str, db: psycopg.Connection[Any], worker_process: Spawner
) -> None:
    # runner A does its upkeep every 5 ms, so that a pause often lands inside a pass
    paused = worker_process("--maintenance-interval", "0.005")
    rng = random.Random(7)
    async with running(dsn, JobRegistry([unused]), channel_names=["other"]):
        for _ in range(20):
            # a random moment of A's upkeep cycle (fuzzing the pause, not synchronising)
            await asyncio.sleep(rng.uniform(0, 0.02))
            os.kill(paused.pid, signal.SIGSTOP)
            try:
                job_id = plant_expired_lease(db)
                # runner B expires it while A is frozen: its last attempt, so it fails for good
                await wait_until(lambda j=job_id: state_of(db, j) == "f", timeout=10)
            finally:
                os.kill(paused.pid, signal.SIGCONT)
    assert paused.poll() is None  # A lived through it all
