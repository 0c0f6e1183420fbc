"""Issue 9.6: a continuation of a two-phase parent that is never committed. When the parent is
discarded at its commit deadline it did not complete: its children must be cancelled (with a
reason naming it), unless they run after failed parents."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from sqlxmq_py import CurrentJob, JobRegistry, job

from .conftest import Runner, state, status, wait_for_state

pytestmark = pytest.mark.timeout(60)  # a hang (a partial fix) fails within a minute

_ran: list[Any] = []


@job(channel_name="reserved")
async def reserved(current_job: CurrentJob) -> None:
    """The two-phase parent (never committed, so it never runs)."""


@job(retain_for=3600)
async def continuation(current_job: CurrentJob) -> None:
    _ran.append(current_job.id)


async def test_a_continuation_of_a_discarded_parent_is_cancelled_and_never_runs(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    """issue 9.6: the parent is spawned with a short commit interval and never committed; when
    it is discarded, its child is cancelled (kept in the history as cancelled, with a reason
    naming the parent) and never runs."""
    _ran.clear()
    parent_id = reserved.builder().set_commit_interval(0.5).spawn(conn)
    child_id = continuation.builder().set_after([parent_id]).spawn(conn)
    conn.commit()
    assert state(db, child_id) == "waiting"
    async with runner(JobRegistry([reserved, continuation])):
        await wait_for_state(db, [child_id], {"cancelled", "completed", "failed"})
    found = status(db, child_id)
    assert found is not None
    assert found.state == "cancelled"
    assert found.last_error is not None
    assert str(parent_id) in found.last_error
    assert _ran == []
    assert state(db, parent_id) != "completed"


@pytest.mark.parametrize("spawned", ["same transaction", "after the parent committed"])
async def test_a_continuation_that_runs_after_failed_parents_runs_when_its_parent_is_discarded(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner, spawned: str
) -> None:
    """issue 9.6: with ``run_after_failed_parents=True`` the child of a discarded parent runs."""
    _ran.clear()
    parent_id = reserved.builder().set_commit_interval(0.5).spawn(conn)
    if spawned != "same transaction":
        conn.commit()
    child_id = (
        continuation.builder().set_after([parent_id], run_after_failed_parents=True).spawn(conn)
    )
    conn.commit()
    async with runner(JobRegistry([reserved, continuation])):
        await wait_for_state(db, [child_id], {"cancelled", "completed", "failed"})
    assert state(db, child_id) == "completed"
    assert _ran == [child_id]
