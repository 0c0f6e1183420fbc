"""The promise under races: a join whose parents end at the same instant in two transactions
is released once, never left waiting; a step added while its parent ends sees that end."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import psycopg

from sqlxmq_py.pull import complete, fail, fetch
from sqlxmq_py.workflow import Step, Workflow, add_steps

from ._util import lease, on, status


def _end_together(
    work: list[tuple[psycopg.Connection[Any], Callable[[psycopg.Connection[Any]], object]]],
) -> None:
    """Runs each action in its connection's transaction and commits it, one thread each, all
    released at once. (Each action locks its workflow first, so one of them waits for the
    other's commit: they are started together, not run to their commits one by one.)"""
    barrier = threading.Barrier(len(work))

    def run(
        conn: psycopg.Connection[Any], action: Callable[[psycopg.Connection[Any]], object]
    ) -> None:
        barrier.wait()
        action(conn)
        conn.commit()

    with ThreadPoolExecutor(len(work)) as pool:
        for done in [pool.submit(run, c, a) for c, a in work]:
            done.result()


def _join_jobs(db: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    rows = db.execute(
        "SELECT state::text, channel_name FROM mq_jobs WHERE channel_name = 'wf-join'"
    ).fetchall()
    return [(str(a), str(b)) for a, b in rows]


def test_a_join_whose_two_parents_end_at_the_same_instant(
    dsn: str, db: psycopg.Connection[Any]
) -> None:
    """Two transactions complete (or fail) the two parents of a join and commit at the same
    moment, thirty times over: each time the join is decided once, never left waiting."""
    with psycopg.connect(dsn) as one, psycopg.connect(dsn) as two:
        for i in range(30):
            wf = Workflow("race")
            wf.add("p1", on("p1"))
            wf.add("p2", on("p2"))
            policy = "run" if i % 3 == 2 else "cancel"
            wf.add("join", on("join"), after=["p1", "p2"], on_parent_failure=policy)
            spawned = wf.spawn(one)
            one.commit()
            first, second = lease(one, "p1"), lease(two, "p2")

            end_second = (
                partial(fail, job=second, error="broke", delay=0)
                if i % 3 == 1
                else partial(complete, job=second, result="r2")
            )
            _end_together([(one, partial(complete, job=first, result="r1")), (two, end_second)])
            st = status(db, spawned.id)
            join = st.step("join")
            if i % 3 == 1:
                assert join.state == "cancelled", i
                assert _join_jobs(db) == [("w", "wf-join")]  # parked behind the failed p2
                db.execute("DELETE FROM mq_jobs")
            else:
                assert join.state == "pending", i
                assert _join_jobs(db) == [("r", "wf-join")]
                (job,) = [lease(one, "join")]
                complete(one, job)
                one.commit()
                assert status(db, spawned.id).state == "completed"
            db.commit()


def test_a_step_added_while_its_parent_ends(dsn: str, db: psycopg.Connection[Any]) -> None:
    """A step is added after a parent in one transaction while the parent completes in
    another, both committing at once: the new step is released exactly when both are in."""
    with psycopg.connect(dsn) as one, psycopg.connect(dsn) as two:
        for i in range(20):
            wf = Workflow("late")
            wf.add("p", on("p"))
            wf.add("keep", on("keep"))  # keeps the workflow open
            spawned = wf.spawn(one)
            one.commit()
            parent = lease(one, "p")
            child = [Step(name="child", builder=on("child"), after=("p",))]
            _end_together(
                [
                    (one, partial(complete, job=parent, result=i)),
                    (two, partial(add_steps, workflow_id=spawned.id, steps=child)),
                ]
            )
            assert status(db, spawned.id).step("child").state == "pending", i
            assert _join_jobs(db) == []
            row = db.execute(
                "SELECT state::text FROM mq_jobs WHERE channel_name = 'wf-child'"
            ).fetchone()
            # released ('s' when the releasing transaction began before the one that added it)
            assert row in (("r",), ("s",)), i
            db.execute("DELETE FROM mq_jobs")
            db.commit()


def test_a_wide_workflow_settled_by_six_threads_at_once(
    dsn: str, db: psycopg.Connection[Any]
) -> None:
    """100 roots, 10 joins on 10 roots each and a final join, settled by six connections at
    once (a third of the roots fail their first attempt): no deadlock, each join released once
    and after all of its parents, every step completed."""
    wf = Workflow("wide")
    for i in range(100):
        wf.add(f"r{i}", on("stress", retries=1).set_json(i))
    for j in range(10):
        wf.add(f"j{j}", on("stress").set_json(100 + j), after=[f"r{j * 10 + k}" for k in range(10)])
    wf.add("end", on("stress").set_json(200), after=[f"j{j}" for j in range(10)])
    spawned = wf.spawn(db)
    db.commit()
    stop = threading.Event()

    def work() -> int:
        done = 0
        with psycopg.connect(dsn) as conn:
            while not stop.is_set():
                got = fetch(conn, ["wf-stress"])
                conn.commit()
                for f in got:
                    payload = f.payload_json
                    assert payload is not None
                    if int(payload) < 100 and int(payload) % 3 == 0 and f.attempt == 1:
                        fail(conn, f, "first attempt", delay=0)
                    else:
                        complete(conn, f, int(payload))
                        done += 1
                    conn.commit()
                if status(conn, spawned.id).finished_at is not None:
                    stop.set()
        return done

    with ThreadPoolExecutor(6) as pool:
        counts = [f.result(timeout=120) for f in [pool.submit(work) for _ in range(6)]]
    assert sum(counts) == 111
    st = status(db, spawned.id)
    assert st.state == "completed"
    assert all(s.state == "completed" for s in st.steps)
    for s in st.steps:
        for parent in s.parents:
            p_done, s_done = st.step(parent).finished_at, s.finished_at
            assert p_done is not None
            assert s_done is not None
            assert p_done <= s_done
    assert st.step("r3").attempts == 2
    assert st.step("end").result == 200
