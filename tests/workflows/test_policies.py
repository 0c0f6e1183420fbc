"""What a step does when a parent fails for good or is cancelled (cancel, skip, run), a parent
that fails an attempt and then succeeds, retrying a failed step while the rest continues, and
cancelling a whole workflow."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from sqlxmq_py.admin import cancel, cancel_workflow, purge, retry_step
from sqlxmq_py.workflow import Step as NewStep
from sqlxmq_py.workflow import StepNotRetryableError, Workflow, WorkflowClosedError, add_steps

from ._util import lease, on, ready, settle, states, status


def _job_state(conn: psycopg.Connection[Any], job_id: uuid.UUID) -> str | None:
    row = conn.execute("SELECT state::text FROM mq_jobs WHERE id = %s", (job_id,)).fetchone()
    conn.commit()
    return None if row is None else str(row[0])


def _policies() -> Workflow:
    """a fails; b cancels, c skips, d runs anyway; each has a child after it."""
    wf = Workflow("policies")
    wf.add("a", on("a"))
    wf.add("ok", on("ok"))
    wf.add("b", on("b"), after=["a", "ok"], on_parent_failure="cancel")
    wf.add("c", on("c"), after=["a", "ok"], on_parent_failure="skip")
    wf.add("d", on("d"), after=["a", "ok"], on_parent_failure="run")
    wf.add("after_b", on("after_b"), after=["b"])
    wf.add("after_b_run", on("after_b_run"), after=["b"], on_parent_failure="run")
    wf.add("after_c", on("after_c"), after=["c"])
    return wf


def test_each_policy_when_a_parent_fails_for_good(conn: psycopg.Connection[Any]) -> None:
    spawned = _policies().spawn(conn)
    conn.commit()
    settle(conn, "a", "fail")
    # cancel and skip act at once; run waits for every parent to end
    assert states(conn, spawned.id) == {
        "a": "failed",
        "ok": "ready",
        "b": "cancelled",
        "c": "skipped",
        "d": "waiting",
        # a cancelled parent cancels by the child's own policy; 'run' runs after it
        "after_b": "cancelled",
        "after_b_run": "ready",
        # a skipped parent counts as completed without a result
        "after_c": "ready",
    }
    st = status(conn, spawned.id)
    assert st.step("b").held_by == "a"
    assert st.step("b").error == "parent step a failed"
    assert st.step("after_b").held_by == "b"
    assert st.step("a").error is not None
    assert "a broke" in st.step("a").error
    assert not ready(conn, "b")
    assert not ready(conn, "c")
    settle(conn, "ok", result="fine")
    assert ready(conn, "d")
    settle(conn, "d")
    settle(conn, "after_b_run")
    settle(conn, "after_c")
    st = status(conn, spawned.id)
    assert st.state == "failed"
    # a's failed job is retryable: the workflow has not finished, the held steps stay parked
    assert st.finished_at is None
    assert _job_state(conn, st.step("b").job_id) == "w"


def test_parked_steps_are_cancelled_once_nothing_can_retry_them(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    spawned = _policies().spawn(conn)
    conn.commit()
    settle(conn, "a", "fail")
    for name in ("ok", "d", "after_b_run", "after_c"):
        settle(conn, name)
    assert purge(conn, failed_before=timedelta(0)).failed == 1
    conn.commit()
    st = status(conn, spawned.id)
    assert st.finished_at is not None
    assert st.expires_at is not None
    assert st.state == "failed"
    assert db.execute("SELECT count(*) FROM mq_jobs").fetchone() == (0,)
    with pytest.raises(StepNotRetryableError, match="purged"):
        retry_step(conn, spawned.id, "a")
    conn.rollback()
    with pytest.raises(WorkflowClosedError, match="finished"):
        add_steps(conn, spawned.id, [NewStep(name="late", builder=on("late"))])
    conn.rollback()


def test_retry_a_failed_step_rearms_what_it_held_and_the_rest_continues(
    conn: psycopg.Connection[Any],
) -> None:
    spawned = _policies().spawn(conn)
    conn.commit()
    settle(conn, "a", "fail")
    # the rest continues while a is failed
    settle(conn, "ok")
    settle(conn, "d")
    settle(conn, "after_c")
    with pytest.raises(StepNotRetryableError, match="it is completed"):
        retry_step(conn, spawned.id, "ok")
    conn.rollback()
    job_id = retry_step(conn, spawned.id, "a")
    conn.commit()
    assert job_id == spawned.step_ids["a"]
    got = states(conn, spawned.id)
    # b and c wait for a again, and so does what b cancelled; what ran stays as it ended
    assert {k: got[k] for k in ("a", "b", "c", "after_b", "d", "after_c")} == {
        "a": "ready",
        "b": "waiting",
        "c": "waiting",
        "after_b": "waiting",
        "d": "completed",
        "after_c": "completed",
    }
    assert got["after_b_run"] == "ready"  # released when b was cancelled; not taken back
    settle(conn, "a", result="second time")
    assert ready(conn, "b")
    assert ready(conn, "c")
    settle(conn, "b")
    settle(conn, "c")
    settle(conn, "after_b")
    settle(conn, "after_b_run")
    st = status(conn, spawned.id)
    assert st.state == "completed"
    assert st.finished_at is not None
    assert st.step("a").result == "second time"


def test_a_parent_that_fails_an_attempt_then_succeeds(conn: psycopg.Connection[Any]) -> None:
    wf = Workflow("flaky")
    wf.add("p", on("p", retries=1))
    wf.add("child", on("child"), after=["p"])
    spawned = wf.spawn(conn)
    conn.commit()
    settle(conn, "p", "fail")
    assert states(conn, spawned.id) == {"p": "retrying", "child": "waiting"}
    assert not ready(conn, "child")
    settle(conn, "p", result="done")
    assert states(conn, spawned.id) == {"p": "completed", "child": "ready"}
    settle(conn, "child")
    st = status(conn, spawned.id)
    assert st.state == "completed"
    assert st.step("p").attempts == 2
    assert st.step("child").attempts == 1


def test_a_cancelled_step_job_cancels_by_policy(conn: psycopg.Connection[Any]) -> None:
    wf = Workflow("cancel-one")
    wf.add("a", on("a"))
    wf.add("b", on("b"), after=["a"])
    wf.add("c", on("c"), after=["a"], on_parent_failure="run")
    spawned = wf.spawn(conn)
    conn.commit()
    cancel(conn, [spawned.step_ids["a"]])
    conn.commit()
    assert states(conn, spawned.id) == {"a": "cancelled", "b": "cancelled", "c": "ready"}
    settle(conn, "c")
    st = status(conn, spawned.id)
    assert st.state == "failed"
    assert st.finished_at is not None
    assert conn.execute("SELECT count(*) FROM mq_jobs").fetchone() == (0,)


def test_cancel_a_whole_workflow_while_a_step_runs(conn: psycopg.Connection[Any]) -> None:
    wf = Workflow("doomed")
    wf.add("a", on("a"))
    wf.add("slow", on("slow"))
    wf.add("b", on("b"), after=["a"])
    wf.add("c", on("c"), after=["a", "slow"], on_parent_failure="run")
    spawned = wf.spawn(conn)
    conn.commit()
    running = lease(conn, "slow")
    done = cancel_workflow(conn, spawned.id, "stop it")
    conn.commit()
    assert (done.cancelled, done.requested) == (3, 1)
    st = status(conn, spawned.id)
    assert st.state == "cancelled"
    assert {s.name: s.display for s in st.steps} == {
        "a": "cancelled",
        "slow": "running",
        "b": "cancelled",
        "c": "cancelled",
    }
    assert st.finished_at is None  # slow still runs
    with pytest.raises(WorkflowClosedError, match="cancelled"):
        add_steps(conn, spawned.id, [NewStep(name="x", builder=on("x"))])
    conn.rollback()
    # the running step completes anyway: nothing is released after it
    from sqlxmq_py.pull import complete

    complete(conn, running, "late")
    conn.commit()
    st = status(conn, spawned.id)
    assert st.finished_at is not None
    assert st.step("slow").state == "completed"
    assert st.step("c").state == "cancelled"
    assert conn.execute("SELECT count(*) FROM mq_jobs").fetchone() == (0,)
    # twice changes nothing more
    again = cancel_workflow(conn, spawned.id)
    conn.commit()
    assert (again.cancelled, again.requested) == (0, 0)


def test_a_step_that_skips_itself(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    """A conditional step decides it has nothing to do: it ends as skipped (with its reason),
    its dependents run without its result; a skip in a rolled-back transaction counts nothing."""
    from sqlxmq_py.pull import complete
    from sqlxmq_py.workflow import WorkflowContext

    wf = Workflow("conditional")
    wf.add("check", on("check"))
    wf.add("work", on("work"))
    wf.add("report", on("report"), after=["check", "work"])
    spawned = wf.spawn(conn)
    conn.commit()
    ctx = WorkflowContext(id=spawned.id, step="check")
    # not released yet for a step that waits; a step that runs may skip itself
    assert not WorkflowContext(id=spawned.id, step="report").skip(conn, "no")
    conn.rollback()
    running = lease(conn, "check")
    assert ctx.skip(conn, "nothing new")
    conn.rollback()  # the skip and the completion go together: neither happened
    assert states(conn, spawned.id)["check"] == "running"
    assert ctx.skip(conn, "nothing new")
    complete(conn, running, "ignored")
    conn.commit()
    settle(conn, "work", result=7)
    st = status(conn, spawned.id)
    assert (st.step("check").state, st.step("check").error) == ("skipped", "nothing new")
    assert st.step("check").result is None
    assert ready(conn, "report")
    assert WorkflowContext(id=spawned.id, step="report").parent_results(db) == {"work": 7}
