"""A role granted only mq_grant_usage() can do everything an application and its runners do:
spawn, run, retry, fail, order, schedule, cancel, wait for results, consume without a runner,
pause and limit channels."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import structlog
from psycopg import sql
from psycopg.conninfo import make_conninfo

from sqlxmq_py import CurrentJob, JobRegistry, exists, job, migrate, spawn_many
from sqlxmq_py.admin import (
    cancel,
    job_status,
    list_channels,
    list_jobs,
    pause_channel,
    queue_counts,
    resume_channel,
    retry,
    set_channel_limit,
)
from sqlxmq_py.pull import complete, fetch
from sqlxmq_py.results import wait_for_result

from .helpers import job_row, running, wait_until


@pytest.fixture
def app_dsn(owner_dsn: str) -> Iterator[str]:
    """The test database, as a fresh login role that has only what mq_grant_usage gives.

    Made through the owner's connection, so that this works also when the suite itself runs as
    an app role (``SQLXMQ_TEST_AS_APP_ROLE=1``), which may not create roles."""
    role = f"sqlxmq_app_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(owner_dsn, autocommit=True) as owner:
        owner.execute(sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER").format(sql.Identifier(role)))
        try:
            owner.execute("SELECT mq_grant_usage(%s)", (role,))
            yield make_conninfo(owner_dsn, user=role)
        finally:
            owner.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                (role,),
            )
            owner.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            owner.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_the_role_cannot_change_the_schema(app_dsn: str) -> None:
    with psycopg.connect(app_dsn) as conn:
        assert conn.execute(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
        ).fetchone() == (False,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DROP TABLE mq_jobs")


def test_the_role_reads_but_cannot_rewrite_the_migration_record(app_dsn: str) -> None:
    with psycopg.connect(app_dsn, autocommit=True) as conn:
        assert migrate(conn) == []  # up to date: checks checksums, changes nothing
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM mq_migrations")


async def test_everything_an_application_does_works_with_only_the_granted_privileges(
    app_dsn: str, db: psycopg.Connection[Any]
) -> None:
    done: list[Any] = []

    @job(retries=1, backoff=0, retain_for=3600)
    async def work(current_job: CurrentJob) -> Any:
        value = current_job.json()
        if value == "flaky" and current_job.attempt == 1:
            raise RuntimeError("once")
        if value == "broken":
            raise RuntimeError("always")
        done.append(value)
        return {"echo": value}

    @job(ordered=True, channel_name="chain")
    async def step(current_job: CurrentJob) -> None:
        done.append(("step", current_job.json()))

    @job(cron="* * * * * *")
    async def tick(current_job: CurrentJob) -> None:
        done.append("tick")

    with (
        structlog.testing.capture_logs() as logs,
        psycopg.connect(app_dsn, autocommit=True) as conn,
    ):
        ids = spawn_many(conn, [work.builder().set_json(v) for v in ["ok", "flaky", "broken"]])
        spawn_many(conn, [step.builder().set_json(i) for i in range(3)])
        waiting = work.builder().set_json("never").set_delay(3600).spawn(conn)
        registry = JobRegistry([work, step, tick])
        async with running(app_dsn, registry, concurrency=(10, 20)):
            assert await asyncio.to_thread(wait_for_result, conn, ids[0], 10) == {"echo": "ok"}
            await wait_until(lambda: (job_row(db, ids[2]) or {}).get("state") == "f")
            await wait_until(lambda: "tick" in done and not exists(db, ids[1]))
            await wait_until(
                lambda: [d for d in done if isinstance(d, tuple)] == [("step", i) for i in range(3)]
            )
            assert retry(conn, [ids[2]]) == [ids[2]]
            assert cancel(conn, [waiting]) == {waiting: "cancelled"}
            assert (job_status(conn, waiting) or {}).state == "cancelled"  # type: ignore[union-attr]
            assert list_jobs(conn, states=["completed"])
            assert queue_counts(conn) is not None
        pulled = work.builder().set_json("pulled").set_channel_name("pull").spawn(conn)
        pause_channel(conn, "pull")
        set_channel_limit(conn, "pull", 3)
        assert fetch(conn, ["pull"]) == []
        assert [c.paused for c in list_channels(conn) if c.channel_name == "pull"] == [True]
        resume_channel(conn, "pull")
        set_channel_limit(conn, "pull", None)
        (fetched,) = fetch(conn, ["pull"])
        assert fetched.id == pulled
        complete(conn, fetched, result=1)
    errors = [
        e
        for e in logs
        if e["log_level"] in ("error", "warning") and "permission denied" in str(e).lower()
    ]
    assert errors == []


def test_the_role_rotates_the_history_partitions(app_dsn: str, owner_dsn: str) -> None:
    # partitions belong to the owner; the upkeep (mq_history_rotate, SECURITY DEFINER) makes and
    # drops them for a runner that holds only the granted rights
    with psycopg.connect(owner_dsn, autocommit=True) as owner:
        owner.execute("SELECT mq_history_partition((now() AT TIME ZONE 'UTC')::date - 3)")
        owner.execute("DROP TABLE mq_history_p" + _day(owner, 1))
    with psycopg.connect(app_dsn, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DROP TABLE mq_history_p" + _day(conn, -3))
        conn.rollback()
        assert conn.execute("SELECT mq_history_rotate()").fetchone() == (1,)
        present = conn.execute(
            "SELECT to_regclass(%s) IS NULL, to_regclass(%s) IS NOT NULL",
            ("mq_history_p" + _day(conn, -3), "mq_history_p" + _day(conn, 1)),
        ).fetchone()
        assert present == (True, True)  # the past day dropped, tomorrow's made again


def _day(conn: psycopg.Connection[Any], offset: int) -> str:
    row = conn.execute(
        "SELECT to_char((now() AT TIME ZONE 'UTC')::date + %s::integer, 'YYYYMMDD')", (offset,)
    ).fetchone()
    assert row is not None
    return str(row[0])
