"""A database that turns read-only under the runner (a failover onto a standby, or
``default_transaction_read_only``), issue 9.14: the runner must back off (not retry at once,
some 1,500 failed statements a second per runner before), log once per change of state, and
resume as soon as the database accepts writes again."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import structlog
from psycopg import sql
from psycopg.conninfo import make_conninfo

from sqlxmq_py import CurrentJob, JobRegistry, job

from ..helpers import running, wait_until
from .conftest import wait_for_state

APP = "sqlxmq-read-only-runner"


def set_read_only(db: psycopg.Connection[Any], read_only: bool) -> None:
    """Makes new sessions of the test database read-only (or not), and ends the runner's
    sessions, as a failover would: its connections come back read-only."""
    name = sql.Identifier(db.info.dbname)
    if read_only:
        db.execute(sql.SQL("ALTER DATABASE {} SET default_transaction_read_only = on").format(name))
    else:
        db.execute(sql.SQL("ALTER DATABASE {} RESET default_transaction_read_only").format(name))
    db.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = current_database() AND application_name = %s",
        (APP,),
    )


@job
async def after_failover(current_job: CurrentJob) -> None:
    pass


async def test_a_read_only_database_makes_the_runner_back_off_and_log_once(
    dsn: str, conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    with structlog.testing.capture_logs() as logs:
        async with running(
            make_conninfo(dsn, application_name=APP),
            JobRegistry([after_failover]),
            poll_interval=0.2,
        ):
            set_read_only(db, True)

            def lease_retries() -> list[float]:
                return [
                    e["retry_in_s"]
                    for e in logs
                    if e["event"] == "database_read_only" and e.get("role") == "lease"
                ]

            def warnings() -> list[tuple[str, str | None]]:
                return [
                    (e["event"], e.get("role"))
                    for e in logs
                    if e["log_level"] in ("warning", "error") and e["event"] != "runner_started"
                ]

            # the lease keeps failing: wait until its retries have backed off past a second
            await wait_until(lambda: any(wait >= 1.0 for wait in lease_retries()), timeout=30)
            # exponential backoff, never a busy loop: a wait past a second within a few retries
            # (the lease loop's, and its idle announcements', on the same connection)
            assert len(lease_retries()) < 20, lease_retries()
            seen = warnings()
            assert ("database_read_only", "lease") in seen or ("connection_lost", "lease") in seen
            # however long it lasts: more retries, with longer waits, and not one more warning
            await wait_until(lambda: any(wait >= 3.0 for wait in lease_retries()), timeout=60)
            assert warnings() == seen

            set_read_only(db, False)
            job_id = after_failover.builder().spawn(conn)
            conn.commit()
            await wait_for_state(db, [job_id], "gone", timeout=30)
    restored = [e.get("role") for e in logs if e["event"] == "connection_restored"]
    assert "lease" in restored  # said once writes work again


async def test_a_read_only_database_loses_no_job_that_was_running(
    dsn: str, conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    """A job that finishes while the database is read-only cannot be recorded; it is neither
    lost nor recorded twice: it completes once the database is writable again."""
    inside = asyncio.Event()
    go = asyncio.Event()
    runs: list[int] = []

    @job(lease=30)
    async def spans_failover(current_job: CurrentJob) -> None:
        runs.append(current_job.attempt)
        inside.set()
        await go.wait()

    job_id = spans_failover.builder().spawn(conn)
    conn.commit()
    async with running(
        make_conninfo(dsn, application_name=APP), JobRegistry([spans_failover]), poll_interval=0.2
    ):
        await asyncio.wait_for(inside.wait(), 10)
        set_read_only(db, True)
        go.set()  # it finishes now: its completion cannot be written yet
        await wait_until(
            lambda: (
                db.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND application_name = %s",
                    (APP,),
                ).fetchone()
                != (0,)
            )
        )
        set_read_only(db, False)
        await wait_for_state(db, [job_id], "gone", timeout=30)
    assert runs == [1]
