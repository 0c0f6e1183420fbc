"""Shared helpers for tests: reading job rows, waiting for conditions with a deadline, and the
one way tests run a runner (:func:`running`)."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from sqlxmq_py import JobBuilder, JobRegistry, JobRunnerHandle, NamedJob
from sqlxmq_py.hooks import RunnerHooks
from sqlxmq_py.pull import fetch

Runner = Callable[..., Any]
"""The ``runner`` fixture: ``async with runner([jobs] or registry, **options) as handle:``."""

STOP_DEADLINE = 30.0
"""How long past its own timeout ``handle.stop()`` may take before the test fails as hung."""


@asynccontextmanager
async def running(
    dsn: str,
    jobs: list[NamedJob[..., Any]] | JobRegistry,
    *,
    concurrency: tuple[int, int] = (4, 8),
    channel_names: list[str] | None = None,
    lease: float | None = None,
    keep_alive: bool = True,
    poll_interval: float = 0.5,
    maintenance_interval: float = 0.1,
    stop_timeout: float | None = 5.0,
    hooks: list[RunnerHooks] | None = None,
    max_payload_bytes: int | None = None,
    cancel_grace: float | None = None,
    prepared: bool | None = None,
    listen_dsn: str | None = None,
    processes: dict[str, Any] | None = None,
) -> AsyncIterator[JobRunnerHandle]:
    """A runner for ``jobs`` on ``dsn`` with short intervals (tests are quick), stopped when the
    block ends however it ends; a ``stop()`` that does not return within its own timeout plus
    :data:`STOP_DEADLINE` fails the test (a hung stop is a bug, never a wait)."""
    registry = jobs if isinstance(jobs, JobRegistry) else JobRegistry(jobs)
    options = (
        registry.runner(dsn)
        .set_concurrency(*concurrency)
        .set_channel_names(channel_names)
        .set_keep_alive(keep_alive)
        .set_poll_interval(poll_interval)
        .set_maintenance_interval(maintenance_interval)
        .set_hooks(*(hooks or []))
        .set_prepared_statements(prepared)
        .set_listen_dsn(listen_dsn)
    )
    if lease is not None:
        options.set_lease(lease)
    if max_payload_bytes is not None:
        options.set_max_payload_bytes(max_payload_bytes)
    if cancel_grace is not None:
        options.set_cancel_grace(cancel_grace)
    if processes is not None:
        options.set_processes(**processes)
    handle = await options.run()
    try:
        yield handle
    finally:
        await stop_within(handle, stop_timeout)


async def stop_within(handle: JobRunnerHandle, timeout: float | None = 5.0) -> None:
    """``handle.stop(timeout)``, failing the test if it hangs past ``timeout`` plus
    :data:`STOP_DEADLINE`."""
    deadline = (timeout or 0.0) + STOP_DEADLINE
    try:
        async with asyncio.timeout(deadline):
            await handle.stop(timeout=timeout)
    except TimeoutError:
        raise AssertionError(f"handle.stop(timeout={timeout}) hung for {deadline} s") from None


def lease_params(**overrides: object) -> dict[str, object]:
    """Parameters of the ``lease`` statement: every job, no cursor, 30 s leases, durable."""
    return {
        "channel_names": None,
        "cursor_name": None,
        "cursor_args": None,
        "limit": 10,
        "default_lease": "30 s",
        "excluded": [],
        "durable": True,
        "max_bytes": 2**40,
        "runner": None,
        **overrides,
    }


def job_row(db: psycopg.Connection[Any], job_id: uuid.UUID) -> dict[str, Any] | None:
    """The job's hot row and payload row joined, or None if it is gone."""
    with db.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT j.*, j.state::text AS state, p.name, p.payload_json::text AS payload_json, "
            "p.payload_bytes, p.retry_backoff, p.last_error, p.created_at "
            "FROM mq_jobs j JOIN mq_payloads p USING (id) WHERE j.id = %s",
            (job_id,),
        )
        return cur.fetchone()


def count_jobs(db: psycopg.Connection[Any], where: str = "true") -> int:
    row = db.execute(f"SELECT count(*) FROM mq_jobs WHERE {where}").fetchone()
    assert row is not None
    return int(row[0])


def payload_count(db: psycopg.Connection[Any]) -> int:
    row = db.execute("SELECT count(*) FROM mq_payloads").fetchone()
    assert row is not None
    return int(row[0])


async def wait_until(
    condition: Callable[[], bool | Awaitable[bool]], timeout: float = 10.0, interval: float = 0.02
) -> None:
    """Waits for a database-side condition that no event announces; fails after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


def db_clock(db: psycopg.Connection[Any]) -> datetime:
    """The database's clock (the one run times, leases and history are measured by)."""
    row = db.execute("SELECT clock_timestamp()").fetchone()
    assert row is not None
    value: datetime = row[0]
    return value


def lease_expiry(db: psycopg.Connection[Any], job_id: uuid.UUID) -> datetime | None:
    """When the job's lease expires (database clock), or None if it is not leased."""
    row = db.execute(
        "SELECT attempt_at FROM mq_jobs WHERE id = %s AND state = 'l'", (job_id,)
    ).fetchone()
    return None if row is None else row[0]


async def lease_renewed(
    db: psycopg.Connection[Any], job_id: uuid.UUID, span: timedelta, timeout: float = 20.0
) -> None:
    """Waits until the job's lease has been renewed to expire at least ``span`` later than it
    did when this was called: proof that the lease outlived its first term by then."""
    await wait_until(lambda: lease_expiry(db, job_id) is not None, timeout=timeout)
    first = lease_expiry(db, job_id)
    assert first is not None
    await wait_until(lambda: (lease_expiry(db, job_id) or first) >= first + span, timeout=timeout)


async def maintenance_passed(db: psycopg.Connection[Any], timeout: float = 20.0) -> None:
    """Waits until a runner's maintenance has expired leases since this call: a canary job
    (channel ``__canary__``, which no test's jobs use) is leased for a millisecond, and its lease
    expiry is the event. Any lease that had expired before this call was seen by that pass. The
    canary stays behind as a failed job (state ``f``)."""
    with psycopg.connect(db.info.dsn) as conn:
        canary = JobBuilder("canary").set_channel_name("__canary__").set_retries(0).spawn(conn)
        (leased,) = fetch(conn, ["__canary__"], limit=1, lease=timedelta(milliseconds=1))
        conn.commit()
    assert leased.id == canary
    await wait_until(lambda: lease_expiry(db, canary) is None, timeout=timeout)


def result_awaited(db: psycopg.Connection[Any], job_id: uuid.UUID | str) -> bool:
    """Whether a ``wait_for_result`` caller has registered its interest in the job."""
    row = db.execute("SELECT notify_done FROM mq_payloads WHERE id = %s", (job_id,)).fetchone()
    return row == (True,)


def listener_idle(db: psycopg.Connection[Any]) -> bool:
    """Whether exactly one runner is registered and it has said it is idle (its first polls
    found nothing more to do)."""
    return db.execute("SELECT count(*), bool_and(idle) FROM mq_listeners").fetchone() == (1, True)


class PollSignals(RunnerHooks):
    """Runner hooks that count polls and set an event at each (for tests that must know that a
    runner looked, and found nothing)."""

    def __init__(self) -> None:
        self.polls: list[tuple[int, int]] = []
        self.event = asyncio.Event()

    def polled(self, leased: int, wanted: int) -> None:
        self.polls.append((leased, wanted))
        self.event.set()

    async def polls_after_now(self, count: int = 2, timeout: float = 20.0) -> None:
        """Waits for ``count`` more polls: with two, the last one started after this call (the
        first may have been under way)."""
        target = len(self.polls) + count
        await wait_until(lambda: len(self.polls) >= target, timeout=timeout)


def incompressible(size: int, seed: int) -> str:
    """Text of exactly ``size`` UTF-8 bytes, random (so PostgreSQL cannot compress it into a
    smaller index entry), with two-byte characters mixed in."""
    rng = random.Random(seed)
    chars: list[str] = []
    used = 0
    while used < size:
        if size - used >= 2 and rng.random() < 0.3:
            chars.append(rng.choice("éüßøåçñ"))
            used += 2
        else:
            chars.append(
                rng.choice("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")
            )
            used += 1
    text = "".join(chars)
    assert len(text.encode()) == size
    return text
