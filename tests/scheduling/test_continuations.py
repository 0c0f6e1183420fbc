"""Continuations: a job that waits for its parents, runs once they all completed, and is
cancelled when one of them fails for good or is cancelled (unless it runs after failed
parents)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import psycopg
import pytest

from sqlxmq_py import CurrentJob, JobCancelledError, job, spawn_many
from sqlxmq_py.admin import cancel, job_status
from sqlxmq_py.pull import complete, fail, fetch
from sqlxmq_py.results import wait_for_result

from ..helpers import Runner, job_row, wait_until
from ._util import history_row, state_of


@job(channel_name="parents", retries=0)
async def parent(current_job: CurrentJob) -> None:
    pass


@job(channel_name="children")
async def child(current_job: CurrentJob) -> None:
    pass


def _finish(conn: psycopg.Connection[Any], job_id: uuid.UUID, *, ok: bool) -> None:
    """Leases ``job_id`` with the pull API and completes it, or fails it for good."""
    fetched = fetch(conn, ["parents"], limit=100)
    conn.commit()
    for item in fetched:
        if item.id == job_id:
            if ok:
                complete(conn, item)
            else:
                assert fail(conn, item, "parent broke") == "failed"
        else:
            fail(conn, item, "not now", delay=0)  # hand the others back (retries=0: failed)
    conn.commit()


async def test_a_continuation_runs_only_after_all_its_parents_completed(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    events: list[str] = []
    release = {"p1": asyncio.Event(), "p2": asyncio.Event()}
    started = {"p1": asyncio.Event(), "p2": asyncio.Event()}
    child_ran = asyncio.Event()

    @job
    async def step(current_job: CurrentJob) -> None:
        name = current_job.json()
        started[name].set()
        await release[name].wait()
        events.append(f"{name} done")

    @job
    async def after_both(current_job: CurrentJob) -> None:
        events.append("child ran")
        child_ran.set()

    p1, p2 = spawn_many(conn, [step.builder().set_json("p1"), step.builder().set_json("p2")])
    child_id = after_both.builder().set_after([p1, p2]).spawn(conn)
    conn.commit()
    assert state_of(db, child_id) == "w"
    status = job_status(db, child_id)
    assert status is not None
    assert status.state == "waiting"
    async with runner([step, after_both]):
        await asyncio.wait_for(asyncio.gather(started["p1"].wait(), started["p2"].wait()), 10)
        release["p1"].set()
        await wait_until(lambda: job_row(db, p1) is None)
        assert state_of(db, child_id) == "w"  # one parent is still running
        assert not child_ran.is_set()
        release["p2"].set()
        await asyncio.wait_for(child_ran.wait(), 10)
    assert events == ["p1 done", "p2 done", "child ran"]


def test_a_parent_failing_for_good_cancels_the_continuation_and_its_own(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    p = parent.builder().spawn(conn)
    c = child.builder().set_after([p]).spawn(conn)
    grandchild = child.builder().set_after([c]).spawn(conn)
    conn.commit()
    _finish(conn, p, ok=False)
    for job_id in (c, grandchild):
        assert job_row(db, job_id) is None
        kept = history_row(db, job_id)
        assert kept is not None
        assert kept["state"] == "cancelled"
        status = job_status(db, job_id)
        assert status is not None
        assert status.state == "cancelled"
    status = job_status(db, c)
    assert status is not None
    assert str(p) in (status.last_error or "")
    assert "failed" in (status.last_error or "")
    assert fetch(conn, ["children"]) == []  # nothing left to run


async def test_wait_for_result_of_a_cancelled_continuation_raises(
    conn: psycopg.Connection[Any], dsn: str
) -> None:
    p = parent.builder().spawn(conn)
    c = child.builder().set_after([p]).spawn(conn)
    conn.commit()
    _finish(conn, p, ok=False)
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as waiter:
        with pytest.raises(JobCancelledError, match="failed"):
            await wait_for_result(waiter, c, timeout=5)


def test_run_after_failed_parents_runs_after_one_failed_and_one_completed(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    ok = parent.builder().set_retries(3).spawn(conn)
    bad = parent.builder().spawn(conn)
    c = child.builder().set_after([ok, bad], run_after_failed_parents=True).spawn(conn)
    conn.commit()
    fetched = {j.id: j for j in fetch(conn, ["parents"], limit=10)}
    assert fail(conn, fetched[bad], "parent broke") == "failed"
    conn.commit()
    assert state_of(db, c) == "w"  # waits for the other parent either way
    complete(conn, fetched[ok])
    conn.commit()
    assert state_of(db, c) == "r"
    (leased,) = fetch(conn, ["children"])
    assert leased.id == c


def test_a_parent_completed_before_the_spawn_counts_as_completed(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    p = parent.builder().spawn(conn)
    conn.commit()
    _finish(conn, p, ok=True)
    c = child.builder().set_after([p]).spawn(conn)
    never_queued = child.builder().set_after([uuid.uuid4()]).spawn(conn)
    conn.commit()
    assert state_of(db, c) == "r"
    assert state_of(db, never_queued) == "r"
    status = job_status(db, c)
    assert status is not None
    assert status.state == "ready"


def test_a_parent_failed_or_cancelled_before_the_spawn_cancels_the_child(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    failed, cancelled = spawn_many(conn, [parent.builder(), parent.builder().set_delay(3600)])
    conn.commit()
    _finish(conn, failed, ok=False)
    assert cancel(conn, [cancelled]) == {cancelled: "cancelled"}
    conn.commit()
    after_failed = child.builder().set_after([failed]).spawn(conn)
    after_cancelled = child.builder().set_after([cancelled]).spawn(conn)
    tolerant = child.builder().set_after([failed], run_after_failed_parents=True).spawn(conn)
    conn.commit()
    for job_id in (after_failed, after_cancelled):
        status = job_status(db, job_id)
        assert status is not None
        assert status.state == "cancelled"
    status = job_status(db, tolerant)
    assert status is not None
    assert status.state == "ready"


def test_cancelling_a_parent_cancels_its_continuations(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    p = parent.builder().set_delay(3600).spawn(conn)
    c = child.builder().set_after([p]).spawn(conn)
    tolerant = child.builder().set_after([p], run_after_failed_parents=True).spawn(conn)
    conn.commit()
    assert cancel(conn, [p], "not needed") == {p: "cancelled"}
    conn.commit()
    status = job_status(db, c)
    assert status is not None
    assert status.state == "cancelled"
    assert "cancelled" in (status.last_error or "")
    assert state_of(db, tolerant) == "r"


def test_cancelling_a_waiting_continuation_leaves_its_parent_alone(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    p = parent.builder().spawn(conn)
    c = child.builder().set_after([p]).spawn(conn)
    conn.commit()
    assert cancel(conn, [c]) == {c: "cancelled"}
    conn.commit()
    assert state_of(db, p) == "r"
    _finish(conn, p, ok=True)
    assert job_row(db, p) is None


def test_parent_and_continuation_spawned_together(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    parent_id = uuid.uuid4()
    _, c = spawn_many(
        conn, [parent.builder().set_id(parent_id), child.builder().set_after([parent_id])]
    )
    conn.commit()
    assert state_of(db, c) == "w"
    _finish(conn, parent_id, ok=True)
    assert state_of(db, c) == "r"
