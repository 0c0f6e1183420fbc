"""Jobs whose name a runner does not know are not burned (issue 10.3): a rolling deploy whose
producers spawn a new job before the runners that know it start, or several services sharing
one database. The runner parks such a job (state "waiting", its attempt not counted, the
reason as its last error); a runner that knows the name makes it runnable again."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import structlog

from sqlxmq_py import CurrentJob, JobRegistry, job, spawn_many
from sqlxmq_py.admin import job_status
from sqlxmq_py.hooks import RunnerHooks

from ..helpers import Runner, count_jobs, wait_until

GHOSTS = 1_000
runs: list[Any] = []


@job(name="ghost", retries=0)
async def ghost(current_job: CurrentJob) -> None:
    runs.append(current_job.id)


@job
async def other(current_job: CurrentJob) -> None:
    pass


class Polls(RunnerHooks):
    def __init__(self) -> None:
        self.count = 0

    def polled(self, leased: int, wanted: int) -> None:
        self.count += 1


async def test_a_thousand_jobs_no_runner_knows_wait_untouched_then_run_once(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    runs.clear()
    ids = spawn_many(conn, [ghost.builder().set_json({"n": i}) for i in range(GHOSTS)])
    conn.commit()
    polls = Polls()
    with structlog.testing.capture_logs() as logs:
        # a runner that does not know "ghost", polling every 10 ms: many lifetimes of a lease
        async with runner(JobRegistry([other]), poll_interval=0.01, hooks=[polls]):
            await wait_until(lambda: count_jobs(db, "state = 'n'") == GHOSTS, timeout=30)
            start = polls.count
            await wait_until(lambda: polls.count >= start + 300, timeout=60)
            assert count_jobs(db, "state = 'n' AND attempts = 0") == GHOSTS  # untouched
    warned = [e for e in logs if e["event"] == "job_name_unknown"]
    assert len(warned) == 1  # once per name, not once per job or per poll
    status = job_status(db, ids[0])
    assert status is not None
    assert status.state == "waiting"
    assert "waiting for a runner that knows the job name 'ghost'" in (status.last_error or "")
    assert status.attempts == 0
    # a runner that knows the name runs every one of them, once
    async with runner(JobRegistry([ghost])):
        await wait_until(lambda: len(runs) >= GHOSTS, timeout=60)
    assert sorted(runs) == sorted(ids)


async def test_two_services_share_a_database_without_spending_each_others_attempts(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    """A runner of another service leases "ghost" jobs too, and parks them; the runner that
    knows them unparks and runs them, and no job ever spends more than one attempt."""
    runs.clear()
    ids = spawn_many(conn, [ghost.builder() for _ in range(200)])
    conn.commit()
    async with (
        runner(JobRegistry([other]), poll_interval=0.01),
        runner(JobRegistry([ghost]), poll_interval=0.05),
    ):
        await wait_until(lambda: len(runs) >= len(ids), timeout=60)
    assert sorted(runs) == sorted(ids)  # each exactly once, none failed (retries=0)


async def test_a_parked_job_can_be_cancelled(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    from sqlxmq_py.admin import cancel

    job_id = ghost.builder().spawn(conn)
    conn.commit()
    async with runner(JobRegistry([other])):
        await wait_until(lambda: count_jobs(db, "state = 'n'") == 1)
    assert cancel(db, [job_id]) == {job_id: "cancelled"}


async def test_a_renewal_racing_the_park_says_nothing(
    dsn: str, conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    """The lease keeper renews from its own thread, with the leases it read a moment before: a
    renewal sent just after the runner's own park of a job committed finds the lease gone.
    That is no lost lease (no ``lease_lost`` warning): the park's own answer decides. The test
    holds the job's payload row, so that the park (which updates the job, then notes the reason
    on the payload) waits, and delivers the keeper's report of that renewal meanwhile."""
    (job_id,) = spawn_many(conn, [ghost.builder()])
    conn.commit()
    with psycopg.connect(dsn) as holder:
        holder.execute("SELECT 1 FROM mq_payloads WHERE id = %s FOR UPDATE", (job_id,))
        with structlog.testing.capture_logs() as logs:
            async with runner(JobRegistry([other])) as handle:
                await wait_until(lambda: park_waits(db))
                row = db.execute("SELECT lease_token FROM mq_jobs WHERE id = %s", (job_id,))
                (token,) = row.fetchone() or (None,)
                reported = asyncio.Event()
                handle._runner._leases_reported([token], [])  # as the keeper's thread does
                asyncio.get_running_loop().call_soon(reported.set)  # after the report's turn
                await reported.wait()
                holder.commit()
                await wait_until(lambda: count_jobs(db, "state = 'n'") == 1)
    assert [e for e in logs if e["event"] == "lease_lost"] == []
    status = job_status(db, job_id)
    assert status is not None
    assert (status.state, status.attempts) == ("waiting", 0)


def park_waits(db: psycopg.Connection[Any]) -> bool:
    """Whether the runner's park waits for a row lock in the test database."""
    row = db.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock' AND query LIKE '%%mq_park%%'"
    ).fetchone()
    return row == (1,)
