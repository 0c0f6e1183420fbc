"""Jobs for the kit's tests. Each writes its effect to ``kit_effects`` (see conftest)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import psycopg

from sqlxmq_py import BlockingCurrentJob, Checkpoint, CurrentJob, job


@dataclass
class Email:
    to: str
    subject: str = "hello"


@dataclass
class Sent:
    message_id: str


async def note(current_job: CurrentJob[Any], text: str) -> None:
    """Writes an effect through the job's pool (in the test's transaction under drain)."""
    async with current_job.pool.connection() as conn:
        await conn.execute(
            "INSERT INTO kit_effects (job_id, note) VALUES (%s, %s)", (current_job.id, text)
        )


@job(channel_name="kit", retries=2, backoff=60)
async def send(current_job: CurrentJob[Email]) -> Sent:
    """Sends an email: fails for an ``.invalid`` address."""
    email = current_job.payload
    if email.to.endswith(".invalid"):
        raise ValueError(f"undeliverable address {email.to}")
    await note(current_job, f"sent to {email.to}")
    return Sent(message_id=f"<{email.subject}@{email.to}>")


@job(channel_name="kit")
async def publish(current_job: CurrentJob) -> str:
    """A continuation: runs after its parents."""
    await note(current_job, "published")
    return "published"


@job(channel_name="kit", retries=0)
async def boom(current_job: CurrentJob) -> None:
    """Always fails, with no retry."""
    raise RuntimeError("boom")


@job(channel_name="kit")
async def exactly_once(current_job: CurrentJob) -> str:
    """Completes in its own transaction, with its write; payload "raise" raises inside it
    (rolling both back), "swallow" rolls back and returns normally."""
    how = current_job.json()
    try:
        async with current_job.pool.connection() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO kit_effects (job_id, note) VALUES (%s, 'once')", (current_job.id,)
            )
            await current_job.complete(conn, result="done")
            if how in ("raise", "swallow"):
                raise RuntimeError("after completing")
    except RuntimeError:
        if how == "raise":
            raise
    return "returned"


@job(channel_name="kit")
def threaded(current_job: BlockingCurrentJob[Email]) -> str:
    """A plain function: runs in a thread, checkpoints, keeps alive and completes itself."""
    current_job.checkpoint(Checkpoint().set_json({"to": "next@example.com"}))
    current_job.keep_alive(60)
    current_job.complete(result="completed by hand")
    return threading.current_thread().name


@job(channel_name="kit")
def threaded_sql(current_job: BlockingCurrentJob) -> None:
    """A plain function writing with the connection its payload names (run_pending lends the
    test's own through ``CONNECTIONS``) and completing in that transaction."""
    conn = CONNECTIONS[current_job.json()["conn"]]
    with conn.transaction():
        conn.execute(
            "INSERT INTO kit_effects (job_id, note) VALUES (%s, 'sync')", (current_job.id,)
        )
        current_job.complete(conn)


CONNECTIONS: dict[str, psycopg.Connection[Any]] = {}


@job(channel_name="kit")
async def respawn(current_job: CurrentJob) -> None:
    """Spawns itself again, forever."""
    async with current_job.pool.connection() as conn:
        await respawn.builder().spawn(conn)


@job(channel_name="kit", auto_complete=False)
async def lazy(current_job: CurrentJob) -> None:
    """Returns without completing (``auto_complete=False``)."""


@job(channel_name="kit", timeout=0.05, retries=0)
async def slow(current_job: CurrentJob) -> None:
    """Runs past its timeout."""
    import asyncio

    await asyncio.Event().wait()


@dataclass
class Greeting:
    text: str


@job(channel_name="kit")
async def greet(current_job: CurrentJob, greeting: Greeting) -> str:
    """Takes a context value."""
    return f"{greeting.text}, {current_job.json()['name']}"


@job(channel_name="kit", retries=0)
async def duplicate(current_job: CurrentJob) -> None:
    """Writes a row twice under a unique key: its second statement fails."""
    async with current_job.pool.connection() as conn:
        await conn.execute(
            "INSERT INTO kit_effects (job_id, note) VALUES (%s, 'dup')", (current_job.id,)
        )
        await conn.execute(
            "CREATE UNIQUE INDEX IF NOT EXISTS kit_effects_once ON kit_effects (note)"
        )
        await conn.execute(
            "INSERT INTO kit_effects (job_id, note) VALUES (%s, 'dup')", (current_job.id,)
        )


@job(channel_name="kit", ordered=True)
async def step(current_job: CurrentJob) -> int:
    """One step of an ordered chain."""
    await note(current_job, f"step {current_job.json()}")
    return int(current_job.json())
