"""The lock order under races: an operator cancelling or retrying a step's job (or cancelling
the whole workflow) while a runner settles another step of the same workflow never deadlocks.
Each test interleaves two transactions deterministically: one runs up to a chosen point, the
other goes on until it has finished its statement or waits for a lock the first holds, and so
on; PostgreSQL's deadlock detector (deadlock_timeout lowered in these sessions) would abort one
of them if the two ever waited for each other."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from typing import Any, Literal

import psycopg
import pytest

from sqlxmq_py import admin
from sqlxmq_py.admin import cancel_workflow
from sqlxmq_py.pull import FetchedJob, complete, fail
from sqlxmq_py.sql import query
from sqlxmq_py.workflow import Workflow

from ._util import lease, on, states, status


@contextmanager
def _session(dsn: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(dsn) as conn:
        conn.execute("SET deadlock_timeout = '20ms'")
        conn.commit()
        yield conn


def _pid(conn: psycopg.Connection[Any]) -> int:
    return int(conn.info.backend_pid)


def _settled(observer: psycopg.Connection[Any], pid: int, work: Future[Any]) -> None:
    """Returns once ``work`` (running on backend ``pid``) has finished, or waits for a lock."""
    deadline = time.monotonic() + 30
    while not work.done():
        row = observer.execute(
            "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)
        ).fetchone()
        observer.commit()
        if row is not None and row[0] == "Lock":
            return
        assert time.monotonic() < deadline, "neither finished nor waiting for a lock"
        threading.Event().wait(0.002)  # the poll's pace, not a synchronisation


def _chain(db: psycopg.Connection[Any], policy: Literal["cancel", "run"] = "cancel") -> Any:
    """a -> b, and c alone (it keeps the workflow open)."""
    wf = Workflow("lock-order")
    wf.add("a", on("a"))
    wf.add("b", on("b"), after=["a"], on_parent_failure=policy)
    wf.add("c", on("c"))
    spawned = wf.spawn(db)
    db.commit()
    return spawned


def _job_id(db: psycopg.Connection[Any], workflow_id: Any, step: str) -> Any:
    row = db.execute(
        "SELECT job_id FROM mq_workflow_steps WHERE workflow_id = %s AND step = %s",
        (workflow_id, step),
    ).fetchone()
    db.commit()
    assert row is not None
    return row[0]


def _end(conn: psycopg.Connection[Any], job: FetchedJob, how: str) -> None:
    if how == "complete":
        complete(conn, job, "done")
    elif how == "fail":
        assert fail(conn, job, "broke", delay=0) == "failed"
    else:  # the runner's own batched statement: it never waits for a row another holds
        rows = conn.execute(
            query("complete"),
            {
                "ids": [job.id],
                "tokens": [job.token],
                "results": ['"done"'],
                "default_retain": "0s",
                "wait": False,
            },
        ).fetchall()
        assert [r[1] for r in rows] == ["completed"]


Action = tuple[int, Callable[[psycopg.Connection[Any]], object]]


def _interleave(dsn: str, sessions: int, plan: list[Action]) -> None:
    """Runs the plan's actions in order, each on its session (one thread per session, so a
    session's actions run one after the other); each next action starts once the one before
    has finished or waits for a lock. Every action must succeed."""
    with ExitStack() as stack:
        conns = [stack.enter_context(_session(dsn)) for _ in range(sessions)]
        threads = [stack.enter_context(ThreadPoolExecutor(1)) for _ in range(sessions)]
        observer = stack.enter_context(psycopg.connect(dsn))
        work: list[Future[object]] = []
        for who, action in plan:
            work.append(threads[who].submit(action, conns[who]))
            _settled(observer, _pid(conns[who]), work[-1])
        for done in work:
            done.result(timeout=30)


def _commit(conn: psycopg.Connection[Any]) -> None:
    conn.commit()


def _race(
    dsn: str,
    first: Callable[[psycopg.Connection[Any]], object],
    second: Callable[[psycopg.Connection[Any]], object],
) -> None:
    """``first`` runs in transaction R (session 0), then ``second`` in C (session 1) until it
    finishes or waits; R commits until it finishes or waits; C commits. Neither may fail."""
    _interleave(dsn, 2, [(0, first), (1, second), (0, _commit), (1, _commit)])


@pytest.mark.parametrize("how", ["complete", "complete-nowait", "fail"])
@pytest.mark.parametrize("via", ["cancel", "cancel_matching"])
def test_cancelling_a_waiting_step_while_its_parent_ends(
    dsn: str, db: psycopg.Connection[Any], how: str, via: str
) -> None:
    """R ends step a (its settlement at commit wants b: to release it, or to cancel it for a's
    failure) while C cancels b's job, by id or in bulk: both commit, b ends cancelled."""
    spawned = _chain(db)
    b_id = _job_id(db, spawned.id, "b")
    a_job = lease(db, "a")

    def cancel_b(conn: psycopg.Connection[Any]) -> None:
        if via == "cancel":
            assert admin.cancel(conn, [b_id], "operator") == {b_id: "cancelled"}
        else:
            assert (
                admin.cancel_matching(conn, admin.JobFilter(channel_name="wf-b"), reason="operator")
                == 1
            )

    _race(dsn, lambda r: _end(r, a_job, how), cancel_b)
    got = states(db, spawned.id)
    assert got["a"] == ("completed" if how != "fail" else "failed")
    assert got["b"] == "cancelled"
    assert db.execute("SELECT count(*) FROM mq_jobs WHERE id = %s", (b_id,)).fetchone() == (0,)
    db.commit()


def test_cancelling_a_step_while_its_runner_completes_it(
    dsn: str, db: psycopg.Connection[Any]
) -> None:
    """C asks to cancel a's job while R completes it: the completion stands, b is released."""
    spawned = _chain(db)
    a_job = lease(db, "a")
    _race(dsn, lambda r: _end(r, a_job, "complete"), lambda c: admin.cancel(c, [a_job.id]))
    got = states(db, spawned.id)
    assert (got["a"], got["b"]) == ("completed", "ready")


@pytest.mark.parametrize("how", ["complete", "fail"])
def test_cancelling_the_workflow_while_a_step_ends(
    dsn: str, db: psycopg.Connection[Any], how: str
) -> None:
    """C cancels the whole workflow (every step's job) while R ends step a: both commit, the
    workflow ends cancelled, b and c with it."""
    spawned = _chain(db)
    a_job = lease(db, "a")
    _race(dsn, lambda r: _end(r, a_job, how), lambda c: cancel_workflow(c, spawned.id))
    st = status(db, spawned.id)
    assert st.state == "cancelled"
    assert st.step("a").state == ("completed" if how == "complete" else "failed")
    assert (st.step("b").state, st.step("c").state) == ("cancelled", "cancelled")
    assert db.execute(
        "SELECT count(*) FROM mq_jobs WHERE workflow_id = %s AND state <> 'f'", (spawned.id,)
    ).fetchone() == (0,)
    db.commit()


@pytest.mark.parametrize("order", [(0, 1, 2), (0, 2, 1), (2, 0, 1), (1, 2, 0)])
@pytest.mark.parametrize("via", ["retry_step", "retry"])
def test_retrying_a_failed_step_while_two_runners_end_others(
    dsn: str, db: psycopg.Connection[Any], via: str, order: tuple[int, int, int]
) -> None:
    """Two runners complete steps x and y of a workflow while an operator retries its failed
    step a (retry_step, or the job's retry by hand), the three committing in each order: none
    fails; a runs again and b, cancelled by a's failure, waits for it again."""
    wf = Workflow("lock-order-retry")
    wf.add("a", on("a"))
    wf.add("b", on("b"), after=["a"])
    wf.add("x", on("x"))
    wf.add("y", on("y"))
    spawned = wf.spawn(db)
    db.commit()
    failed = lease(db, "a")
    assert fail(db, failed, "broke", delay=0) == "failed"
    db.commit()
    assert states(db, spawned.id)["b"] == "cancelled"
    x_job, y_job = lease(db, "x"), lease(db, "y")

    def retry_a(conn: psycopg.Connection[Any]) -> None:
        if via == "retry_step":
            assert admin.retry_step(conn, spawned.id, "a") == failed.id
        else:
            assert admin.retry(conn, [failed.id]) == [failed.id]

    plan: list[Action] = [
        (0, lambda c: _end(c, x_job, "complete")),
        (1, lambda c: _end(c, y_job, "complete")),
        (2, retry_a),
    ]
    _interleave(dsn, 3, plan + [(who, _commit) for who in order])
    got = states(db, spawned.id)
    assert (got["x"], got["y"], got["a"], got["b"]) == (
        "completed",
        "completed",
        "ready",
        "waiting",
    )


def test_a_stopping_runner_hands_steps_back_while_the_workflow_is_cancelled(
    dsn: str, db: psycopg.Connection[Any]
) -> None:
    """R, a runner stopping, hands back step x and cancels step y (asked to stop before) while
    C cancels the workflow, which asks x to stop: both commit, the workflow ends cancelled."""
    spawned = _chain(db)
    x_job, y_job = lease(db, "a"), lease(db, "c")
    assert admin.cancel(db, [y_job.id]) == {y_job.id: "requested"}
    db.commit()

    def hand_back(conn: psycopg.Connection[Any]) -> None:
        rows = conn.execute(
            query("release"),
            {
                "ids": [x_job.id, y_job.id],
                "tokens": [x_job.token, y_job.token],
                "by": "test",
                "started": True,
            },
        ).fetchall()
        assert sorted(r[1] for r in rows) == ["cancelled", "interrupted"]

    _race(dsn, hand_back, lambda c: cancel_workflow(c, spawned.id))
    st = status(db, spawned.id)
    assert st.state == "cancelled"
    assert {s.name: s.state for s in st.steps} == {
        "a": "cancelled",
        "b": "cancelled",
        "c": "cancelled",
    }


def test_a_last_lease_expiring_while_the_workflow_is_cancelled(
    dsn: str, db: psycopg.Connection[Any]
) -> None:
    """R, the maintenance, fails step a for good when its last lease expires, while C cancels
    the workflow (which asks a to stop): both commit, a ends failed and the rest cancelled."""
    spawned = _chain(db)
    a_job = lease(db, "a")
    db.execute(
        "UPDATE mq_jobs SET attempt_at = now() - interval '1 minute' WHERE id = %s", (a_job.id,)
    )
    db.commit()

    def expire(conn: psycopg.Connection[Any]) -> None:
        rows = conn.execute(query("expire_leases")).fetchall()
        assert [(r[0], r[-1]) for r in rows] == [(a_job.id, True)]

    _race(dsn, expire, lambda c: cancel_workflow(c, spawned.id))
    st = status(db, spawned.id)
    assert st.state == "cancelled"
    assert {s.name: s.state for s in st.steps} == {
        "a": "failed",
        "b": "cancelled",
        "c": "cancelled",
    }


@pytest.mark.parametrize("via", ["purge", "delete_matching"])
def test_a_failed_step_purged_while_the_workflow_is_cancelled(
    dsn: str, db: psycopg.Connection[Any], via: str
) -> None:
    """R purges step a's failed job (purge, or a bulk delete) while C cancels the workflow,
    which cancels a's job too: both commit, a stays failed and the rest is cancelled."""
    spawned = _chain(db)
    failed = lease(db, "a")
    assert fail(db, failed, "broke", delay=0) == "failed"
    db.commit()

    def purge(conn: psycopg.Connection[Any]) -> None:
        if via == "purge":
            assert admin.purge(conn, failed_before=timedelta(0)).failed == 1
        else:
            assert admin.delete_matching(conn, admin.JobFilter(channel_name="wf-a")) == 1

    _race(dsn, purge, lambda c: cancel_workflow(c, spawned.id))
    st = status(db, spawned.id)
    assert st.state == "cancelled"
    got = {s.name: s.state for s in st.steps}
    assert got == {"a": "failed", "b": "cancelled", "c": "cancelled"}
