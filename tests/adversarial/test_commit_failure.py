"""Issue 9.5: the README's exactly-once pattern, a job that completes itself inside its own
transaction, when that transaction fails at COMMIT (a deferred unique constraint). The attempt
must be recorded as failed (the job retried, not left running) and the runner must not lose the
job's slot: after more such jobs than ``min_concurrency`` it still leases and completes jobs."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from sqlxmq_py import BlockingCurrentJob, CurrentJob, JobRegistry, NamedJob, job

from .conftest import Runner, status, wait_for_state

pytestmark = pytest.mark.timeout(60)  # a hang (a partial fix) fails within a minute

MIN_CONCURRENCY = 2
BAD_JOBS = MIN_CONCURRENCY + 1
_dsn = ""


@job(retries=1, backoff=0)
async def completes_then_commit_fails(current_job: CurrentJob) -> None:
    """Writes a duplicate key and completes in the same transaction: COMMIT fails."""
    async with current_job.pool.connection() as conn, conn.transaction():
        await conn.execute("INSERT INTO effects (k) VALUES (1)")
        await current_job.complete(conn)


@job(retries=1, backoff=0)
def completes_then_commit_fails_thread(current_job: BlockingCurrentJob) -> None:
    """The same with a sync connection of the job's own."""
    with psycopg.connect(_dsn) as conn, conn.transaction():
        conn.execute("INSERT INTO effects (k) VALUES (1)")
        current_job.complete(conn)


@job(retain_for=3600)
async def normal(current_job: CurrentJob) -> None:
    pass


KINDS: dict[str, NamedJob[..., Any]] = {
    "async": completes_then_commit_fails,
    "thread": completes_then_commit_fails_thread,
}


@pytest.mark.parametrize("kind", list(KINDS))
async def test_a_completion_whose_commit_fails_is_a_failed_attempt_and_frees_its_slot(
    dsn: str,
    conn: psycopg.Connection[Any],
    db: psycopg.Connection[Any],
    runner: Runner,
    kind: str,
) -> None:
    """issue 9.5: each attempt whose COMMIT fails is recorded as failed with the unique
    violation (the job is retried, then fails for good; never "lease expired"), and with more
    such jobs than min_concurrency the runner still leases and completes a normal job."""
    global _dsn
    _dsn = dsn
    db.execute(
        "CREATE TABLE effects (k int, "
        "CONSTRAINT effects_k_unique UNIQUE (k) DEFERRABLE INITIALLY DEFERRED)"
    )
    db.execute("INSERT INTO effects (k) VALUES (1)")
    bad_ids = [KINDS[kind].builder().spawn(conn) for _ in range(BAD_JOBS)]
    conn.commit()
    registry = JobRegistry([*KINDS.values(), normal])
    async with runner(registry, concurrency=(MIN_CONCURRENCY, 4), lease=2):
        await wait_for_state(db, bad_ids, "failed", timeout=20)
        normal_id = normal.builder().spawn(conn)
        conn.commit()
        await wait_for_state(db, [normal_id], "completed")
    for job_id in bad_ids:
        found = status(db, job_id)
        assert found is not None
        assert found.attempts == 2  # retried once, then failed for good
        error = found.last_error or ""
        assert "UniqueViolation" in error or "duplicate key" in error, error[:300]
    assert db.execute("SELECT count(*) FROM effects").fetchone() == (1,)
