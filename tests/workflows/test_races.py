"""The promise under races: a join whose parents end at the same instant in two transactions
is released once, never left waiting; a step added while its parent ends sees that end."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg

from sqlxmq_py.pull import complete, fail
from sqlxmq_py.workflow import Step, Workflow, add_steps

from ._util import lease, on, status


def _commit_together(connections: list[psycopg.Connection[Any]]) -> None:
    """Commits the connections' open transactions from as many threads, released together."""
    barrier = threading.Barrier(len(connections))

    def commit(conn: psycopg.Connection[Any]) -> None:
        barrier.wait()
        conn.commit()

    with ThreadPoolExecutor(len(connections)) as pool:
        for done in [pool.submit(commit, c) for c in connections]:
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
            complete(one, first, "r1")
            if i % 3 == 1:
                fail(two, second, "broke", delay=0)
            else:
                complete(two, second, "r2")
            _commit_together([one, two])
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
            complete(one, parent, i)
            add_steps(two, spawned.id, [Step(name="child", builder=on("child"), after=("p",))])
            _commit_together([one, two])
            assert status(db, spawned.id).step("child").state == "pending", i
            assert _join_jobs(db) == []
            row = db.execute(
                "SELECT state::text FROM mq_jobs WHERE channel_name = 'wf-child'"
            ).fetchone()
            # released ('s' when the releasing transaction began before the one that added it)
            assert row in (("r",), ("s",)), i
            db.execute("DELETE FROM mq_jobs")
            db.commit()
