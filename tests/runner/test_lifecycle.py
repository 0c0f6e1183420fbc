"""Wake-ups, reconnection, shutdown and logging."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import structlog

from sqlxmq_py import CurrentJob, JobRegistry, exists, job

from ..helpers import Runner, job_row, listener_idle, wait_until


def _kill_others(db: psycopg.Connection[Any], keep: psycopg.Connection[Any]) -> int:
    """Terminates every connection to the test database but ``db`` and ``keep``."""
    rows = db.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid NOT IN (pg_backend_pid(), %s)",
        (keep.info.backend_pid,),
    ).fetchall()
    return len(rows)


async def test_notification_wakes_an_idle_runner_before_its_poll_timer(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    done = asyncio.Event()

    @job
    async def quick(current_job: CurrentJob) -> None:
        done.set()

    # the poll timer never fires within the test: only the notification can wake the runner
    async with runner([quick], poll_interval=3600):
        await wait_until(lambda: listener_idle(db))  # its first polls are done: it is idle
        quick.builder().spawn(conn)
        conn.commit()
        await asyncio.wait_for(done.wait(), 30)


async def test_timer_poll_finds_jobs_without_notifications(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    done = asyncio.Event()

    @job
    async def quiet(current_job: CurrentJob) -> None:
        done.set()

    async with runner([quiet], poll_interval=0.3):
        await wait_until(lambda: listener_idle(db))  # it announced itself idle: not again
        # as if LISTEN were broken (a pooler in transaction mode): no runner looks idle
        db.execute("UPDATE mq_listeners SET idle = false")
        quiet.builder().spawn(conn)
        conn.commit()
        await asyncio.wait_for(done.wait(), 5)


async def test_runner_reconnects_after_its_connections_are_killed(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    ran: list[Any] = []

    @job
    async def survive(current_job: CurrentJob) -> None:
        ran.append(current_job.json())

    with structlog.testing.capture_logs() as logs:
        async with runner([survive], poll_interval=0.5):
            first = survive.builder().set_json(1).spawn(conn)
            conn.commit()
            await wait_until(lambda: not exists(db, first))
            assert _kill_others(db, conn) >= 4  # listener, lease, completion, keeper, pool
            second = survive.builder().set_json(2).spawn(conn)
            conn.commit()
            await wait_until(lambda: not exists(db, second), timeout=15)
            third = survive.builder().set_json(3).spawn(conn)
            conn.commit()
            await wait_until(lambda: not exists(db, third), timeout=15)
    assert ran == [1, 2, 3]
    events = {e["event"] for e in logs}
    assert "listener_lost" in events


async def test_stop_lets_running_jobs_finish(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    inside = asyncio.Event()
    release = asyncio.Event()
    finished: list[bool] = []

    @job
    async def finishing(current_job: CurrentJob) -> None:
        inside.set()
        await release.wait()
        finished.append(True)

    job_id = finishing.builder().spawn(conn)
    conn.commit()
    handle = await JobRegistry([finishing]).runner(db.info.dsn).run()
    await asyncio.wait_for(inside.wait(), 10)
    with structlog.testing.capture_logs() as logs:
        stopping = asyncio.create_task(handle.stop(timeout=30))
        await wait_until(lambda: any(e["event"] == "runner_stopping" for e in logs))
        assert not stopping.done()  # stop() waits for the running job
        assert finished == []
        release.set()
        await asyncio.wait_for(stopping, 30)
    assert finished == [True]
    assert not exists(db, job_id)
    assert handle.num_running_jobs() == 0


async def test_stop_timeout_cancels_and_hands_leases_back_without_using_an_attempt(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    inside = asyncio.Event()
    cancelled: list[bool] = []

    @job(retries=0)
    async def endless(current_job: CurrentJob) -> None:
        inside.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    job_id = endless.builder().spawn(conn)
    conn.commit()
    with structlog.testing.capture_logs() as logs:
        handle = await JobRegistry([endless]).runner(db.info.dsn).run()
        await asyncio.wait_for(inside.wait(), 10)
        await handle.stop(timeout=0.2)
    assert cancelled == [True]
    row = job_row(db, job_id)
    assert row is not None
    assert row["state"] == "r"  # runnable again at once, by any runner
    assert row["attempts"] == 0  # the interrupted attempt does not count
    assert row["lease_token"] is None
    assert [e["event"] for e in logs].count("job_interrupted") == 1


async def test_async_with_stops_the_runner_and_unregisters_it(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    @job
    async def anything(current_job: CurrentJob) -> None:
        pass

    async with await JobRegistry([anything]).runner(db.info.dsn).run() as handle:
        assert db.execute("SELECT count(*) FROM mq_listeners").fetchone() == (1,)
        assert await handle.wait_jobs_finish(1)
    assert db.execute("SELECT count(*) FROM mq_listeners").fetchone() == (0,)


async def test_one_log_line_per_finished_job_with_duration(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    spans: list[float] = []

    @job
    async def logged(current_job: CurrentJob) -> None:
        loop = asyncio.get_running_loop()
        began = loop.time()
        await asyncio.sleep(0.05)  # its work: something to measure
        spans.append(loop.time() - began)

    job_id = logged.builder().spawn(conn)
    conn.commit()
    with structlog.testing.capture_logs() as logs:
        async with runner([logged]):
            await wait_until(lambda: not exists(db, job_id))
    events = [e["event"] for e in logs]
    assert events[0] == "runner_started"
    assert events[-1] == "runner_stopped"
    finished = [e for e in logs if e["event"] == "job_completed"]
    assert len(finished) == 1
    assert finished[0]["job_id"] == str(job_id)
    assert finished[0]["job_name"] == logged.name
    # the attempt's duration (the runner's loop clock) contains the function's own run
    assert finished[0]["duration_s"] >= spans[0] > 0
    assert finished[0]["log_level"] == "debug"  # per-job lines are debug (DESIGN section 6)


async def test_password_never_appears_in_logs(dsn: str, db: psycopg.Connection[Any]) -> None:
    db.execute("CREATE ROLE runner_with_secret LOGIN PASSWORD 'hunter2-secret' SUPERUSER")
    try:
        secret_dsn = psycopg.conninfo.make_conninfo(
            dsn, user="runner_with_secret", password="hunter2-secret"
        )

        @job
        async def anything(current_job: CurrentJob) -> None:
            pass

        with structlog.testing.capture_logs() as logs:
            handle = await JobRegistry([anything]).runner(secret_dsn).run()
            await handle.stop()
        assert logs
        assert "hunter2-secret" not in repr(logs)
    finally:
        db.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE usename = 'runner_with_secret'"
        )
        db.execute("DROP ROLE runner_with_secret")
