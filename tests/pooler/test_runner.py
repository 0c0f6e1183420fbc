"""The runner behind PgBouncer (issue 9.18): in transaction mode, with few server sessions
shared by all its connections, every job runs exactly once and none of the runner's
statements fails; forcing prepared statements shows what it avoids; session mode works too."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg_pool import ConnectionPool
from structlog.typing import EventDict

from sqlxmq_py import BlockingCurrentJob, CurrentJob, JobBuilder, NamedJob, job

from ..helpers import count_jobs, running, wait_until
from ..test_readme import BLOCKS as README_BLOCKS
from .conftest import PgBouncer, StartPgBouncer, captured_logs, events

STATEMENT_FAILURES = ("poll_failed", "batch_write_failed", "outcome_not_recorded")
EXPECTED_WARNINGS = {"listener_deaf", "job_failed"}
JOBS_PER_PRODUCER = 80
BATCH = 10


CREATE_STARTS = (
    "CREATE TABLE starts (job_id uuid NOT NULL, attempt int NOT NULL, kind text NOT NULL, "
    "tag text NOT NULL, UNIQUE (job_id, attempt))"
)
RECORD_START = "INSERT INTO starts (job_id, attempt, kind, tag) VALUES (%s, %s, %s, %s)"


def start_row(current_job: CurrentJob | BlockingCurrentJob) -> tuple[Any, ...]:
    payload = current_job.json()
    return (current_job.id, current_job.attempt, payload["kind"], payload["tag"])


def make_jobs(thread_pool: ConnectionPool[Any]) -> list[NamedJob[..., Any]]:
    """An async and a thread job that record each start in ``starts`` (the async one through
    the runner's pool, the thread one through ``thread_pool``) and fail their first attempt
    when their payload's kind is "flaky"."""

    @job(retries=2, backoff=0)
    async def async_work(current_job: CurrentJob) -> None:
        async with current_job.pool.connection() as conn:
            await conn.execute(RECORD_START, start_row(current_job))
        if current_job.json()["kind"] == "flaky" and current_job.attempt == 1:
            raise RuntimeError("fails once")

    @job(retries=2, backoff=0)
    def thread_work(current_job: BlockingCurrentJob) -> None:
        with thread_pool.connection() as conn:
            conn.execute(RECORD_START, start_row(current_job))
        if current_job.json()["kind"] == "flaky" and current_job.attempt == 1:
            raise RuntimeError("fails once")

    return [async_work, thread_work]


def builder_for(
    jobs: list[NamedJob[..., Any]], producer: int, n: int
) -> tuple[JobBuilder, str, str]:
    """The n-th job of a producer, its tag and kind: async or thread, and plain, flaky, keyed
    (three keys per producer, replaced while they wait) or delayed."""
    async_work, thread_work = jobs
    kind = ("plain", "flaky", "keyed", "delayed")[(n // 2) % 4]
    builder = (async_work if n % 2 == 0 else thread_work).builder()
    tag = f"p{producer}-n{n}"
    builder.set_json({"kind": kind, "tag": tag})
    if kind == "keyed":
        builder.set_job_key(f"p{producer}-k{n % 3}")
    if kind == "delayed":
        builder.set_delay(timedelta(milliseconds=100 + (n * 37) % 500))
    return builder, tag, kind


@dataclass
class Produced:
    """What a producer's committed spawns returned: for each job id, the tags and kinds of the
    spawns that returned it, in order (several for a keyed job replaced while it waited)."""

    spawns: dict[uuid.UUID, list[tuple[str, str]]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def produce(
    dsn: str,
    jobs: list[NamedJob[..., Any]],
    producer: int,
    prepared: bool,
    start: threading.Barrier,
) -> Produced:
    """Spawns this producer's jobs in transactions of ``BATCH``. With psycopg's default
    ``prepare_threshold`` (``prepared``: the application's mistake behind a transaction
    pooler) a batch may fail on a prepared statement: it is rolled back, its error kept, and
    the producer goes on with the next batch on a new connection (not retried: the statements
    such connections leave prepared on the server sessions can make every retry fail); with
    ``prepare_threshold=None`` (as the README says) nothing may fail."""
    produced = Produced()
    kwargs: dict[str, Any] = {} if prepared else {"prepare_threshold": None}
    conn = psycopg.connect(dsn, **kwargs)
    start.wait(30)
    try:
        for first in range(0, JOBS_PER_PRODUCER, BATCH):
            batch = [builder_for(jobs, producer, n) for n in range(first, first + BATCH)]
            try:
                with conn.transaction():
                    ids = [b.spawn(conn) for b, _, _ in batch]
            except psycopg.Error as exc:
                if not prepared:
                    raise
                produced.errors.append(f"{type(exc).__name__}: {exc}")
                conn.close()
                conn = psycopg.connect(dsn, **kwargs)
                continue
            for job_id, (_, tag, kind) in zip(ids, batch, strict=True):
                produced.spawns.setdefault(job_id, []).append((tag, kind))
    finally:
        conn.close()
    return produced


def starts(db: psycopg.Connection[Any]) -> dict[uuid.UUID, list[tuple[int, str, str]]]:
    """(attempt, kind, tag) of every recorded start, per job, in attempt order."""
    found: dict[uuid.UUID, list[tuple[int, str, str]]] = {}
    for job_id, attempt, kind, tag in db.execute(
        "SELECT job_id, attempt, kind, tag FROM starts ORDER BY job_id, attempt"
    ):
        found.setdefault(job_id, []).append((attempt, kind, tag))
    return found


def expected_starts(produced: list[Produced]) -> dict[uuid.UUID, list[tuple[int, str, str]]]:
    """Each job runs once, with the payload of the last spawn that returned it (a keyed job
    replaced while it waited takes the replacement's payload); a flaky one fails its first
    attempt and runs again."""
    expected: dict[uuid.UUID, list[tuple[int, str, str]]] = {}
    for p in produced:
        for job_id, spawns in p.spawns.items():
            tag, kind = spawns[-1]
            attempts = [1, 2] if kind == "flaky" else [1]
            expected[job_id] = [(a, kind, tag) for a in attempts]
    return expected


def unexpected_log_lines(logs: list[EventDict]) -> list[EventDict]:
    return [
        e
        for e in logs
        if e["log_level"] in ("warning", "error", "critical")
        and e["event"] not in EXPECTED_WARNINGS
    ]


async def run_workload(
    bouncer: PgBouncer, db: psycopg.Connection[Any], prepared_producers: list[bool]
) -> tuple[list[Produced], list[EventDict]]:
    """The producers spawn their jobs at once, through ``bouncer``, while a runner runs them
    through it; returns when every job has run (or fails after a generous guard)."""
    db.execute(CREATE_STARTS)
    with ConnectionPool(
        bouncer.dsn, kwargs={"prepare_threshold": None}, min_size=1, max_size=4, open=False
    ) as thread_pool:
        thread_pool.wait()
        jobs = make_jobs(thread_pool)
        start = threading.Barrier(len(prepared_producers))
        async with captured_logs() as (logs, _), running(bouncer.dsn, jobs, concurrency=(8, 16)):
            produced = await asyncio.gather(
                *(
                    asyncio.to_thread(produce, bouncer.dsn, jobs, i, prepared, start)
                    for i, prepared in enumerate(prepared_producers)
                )
            )
            expected = expected_starts(produced)
            await wait_until(
                lambda: starts(db) == expected and count_jobs(db) == 0, timeout=120, interval=0.2
            )
    return produced, logs


@pytest.mark.timeout(240)
async def test_the_runner_through_a_transaction_pooler_runs_every_job_exactly_once(
    pgbouncer: StartPgBouncer, db: psycopg.Connection[Any]
) -> None:
    bouncer = pgbouncer(pool_size=3)
    # two producers as the README says (prepare_threshold=None), two with psycopg's default
    produced, logs = await run_workload(bouncer, db, [False, False, True, True])
    expected = expected_starts(produced)
    found = starts(db)
    assert found == expected
    spawned = [sum(len(s) for s in p.spawns.values()) for p in produced]
    for p, count in zip(produced, spawned, strict=True):
        assert count == JOBS_PER_PRODUCER - BATCH * len(p.errors)
    assert spawned[:2] == [JOBS_PER_PRODUCER] * 2  # prepare_threshold=None: nothing failed
    kinds = Counter(steps[-1][1] for steps in expected.values())
    assert set(kinds) == {"plain", "flaky", "keyed", "delayed"}
    replaced = sum(spawned) - len(expected)
    print(f"jobs {len(expected)} {dict(kinds)}, keyed spawns folded into waiting jobs: {replaced}")
    print(
        "errors of the default-threshold producers:",
        Counter(e.split(":")[0] for p in produced for e in p.errors),
    )
    (started,) = events(logs, "runner_started")
    assert (started["behind_pooler"], started["prepared_statements"]) == (True, False)
    for name in STATEMENT_FAILURES:
        assert events(logs, name) == []
    assert unexpected_log_lines(logs) == []
    retried = [e for e in events(logs, "job_failed") if not e.get("final")]
    assert len(retried) == kinds["flaky"]


@pytest.mark.timeout(240)
async def test_the_runner_through_a_session_pooler_runs_its_jobs(
    pgbouncer: StartPgBouncer, db: psycopg.Connection[Any]
) -> None:
    """Session mode: a server session per client connection (so enough of them for the runner's
    connections and the producers'). The checks cannot tell it from transaction mode, so
    prepared statements and LISTEN are off there too (set_listen_dsn turns LISTEN back on);
    the jobs run."""
    bouncer = pgbouncer(pool_mode="session", pool_size=40)
    produced, logs = await run_workload(bouncer, db, [False, False])
    assert starts(db) == expected_starts(produced)
    (started,) = events(logs, "runner_started")
    assert (started["behind_pooler"], started["prepared_statements"]) == (True, False)


def prepared_statement_errors(logs: list[EventDict]) -> list[EventDict]:
    return [e for e in logs if "prepared statement" in str(e.get("error"))]


@pytest.mark.timeout(240)
async def test_forcing_prepared_statements_through_a_transaction_pooler_fails(
    pgbouncer: StartPgBouncer,
) -> None:
    """The control: what ``prepared_statements=False`` avoids. Once psycopg has run one of the
    runner's statements five times on a connection it prepares it, on the server session of
    that moment; a later run may be on another session, which does not have it (or has another
    statement under that name). One job at a time, until a statement fails that way."""
    bouncer = pgbouncer(pool_size=3)
    ticks: dict[int, asyncio.Event] = {}

    @job
    async def tick(current_job: CurrentJob) -> None:
        ticks[current_job.json()].set()

    with psycopg.connect(bouncer.dsn, autocommit=True, prepare_threshold=None) as producer:
        async with (
            captured_logs() as (logs, _),
            running(bouncer.dsn, [tick], prepared=True, stop_timeout=1),
        ):
            for i in range(100):
                ticks[i] = asyncio.Event()
                tick.builder().set_json(i).spawn(producer)
                with contextlib.suppress(TimeoutError):  # a runner stuck on its failures
                    await asyncio.wait_for(ticks[i].wait(), 10)
                if prepared_statement_errors(logs) or not ticks[i].is_set():
                    break
    (started,) = events(logs, "runner_started")
    assert (started["behind_pooler"], started["prepared_statements"]) == (True, True)
    failures = prepared_statement_errors(logs)
    assert failures, f"no statement failed in {i + 1} jobs"
    print(f"after {i + 1} jobs:", Counter((e["event"], str(e["error"])[:60]) for e in failures))


def test_the_readme_example_behind_pgbouncer_runs_through_a_real_one(
    pgbouncer: StartPgBouncer, dsn: str, tmp_path: Path
) -> None:
    """The README's *Behind PgBouncer* example, with ``$PGBOUNCER_DSN`` naming a PgBouncer in
    transaction mode (tests/test_readme.py runs it without one)."""
    (block,) = [b for b in README_BLOCKS if "PGBOUNCER_DSN" in b]
    bouncer = pgbouncer(pool_size=2)
    script = tmp_path / "behind_pgbouncer.py"
    script.write_text(block)
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SQLXMQ_DSN": dsn, "PGBOUNCER_DSN": bouncer.dsn},
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "welcome, Ada" in result.stdout
