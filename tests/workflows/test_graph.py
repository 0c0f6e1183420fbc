"""Steps run in dependency order: fan-out, fan-in joins that wait for every parent, results
handed to dependents, and a status that draws the graph after the jobs are gone."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from sqlxmq_py.workflow import (
    DuplicateStepError,
    Step,
    UnknownStepError,
    Workflow,
    WorkflowCycleError,
    add_steps,
)

from ._util import on, ready, settle, states, status


def _diamond() -> Workflow:
    wf = Workflow("diamond")
    wf.add("a", on("a"))
    wf.add("b", on("b"), after=["a"])
    wf.add("c", on("c"), after=["a"])
    wf.add("d", on("d"), after=["b", "c"])
    return wf


def test_fan_out_then_join_waits_for_every_parent(conn: psycopg.Connection[Any]) -> None:
    spawned = _diamond().spawn(conn)
    conn.commit()
    assert states(conn, spawned.id) == {
        "a": "ready",
        "b": "waiting",
        "c": "waiting",
        "d": "waiting",
    }
    settle(conn, "a", result={"rows": 3})
    assert ready(conn, "b")
    assert ready(conn, "c")
    assert not ready(conn, "d")
    settle(conn, "b", result="B")
    # one parent of the join is not enough
    assert not ready(conn, "d")
    assert states(conn, spawned.id)["d"] == "waiting"
    settle(conn, "c", result="C")
    assert ready(conn, "d")
    settle(conn, "d")
    st = status(conn, spawned.id)
    assert st.state == "completed"
    assert st.finished_at is not None
    assert [(s.name, s.state, s.result) for s in st.steps] == [
        ("a", "completed", {"rows": 3}),
        ("b", "completed", "B"),
        ("c", "completed", "C"),
        ("d", "completed", None),
    ]
    assert st.step("d").parents == ("b", "c")
    # the graph outlives the jobs
    row = conn.execute("SELECT count(*) FROM mq_jobs").fetchone()
    assert row == (0,)


def test_spawn_rolls_back_with_the_caller(conn: psycopg.Connection[Any]) -> None:
    spawned = _diamond().spawn(conn)
    conn.rollback()
    assert conn.execute("SELECT count(*) FROM mq_jobs").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM mq_workflows").fetchone() == (0,)
    from sqlxmq_py.admin import workflow_status

    assert workflow_status(conn, spawned.id) is None


def test_graph_errors_name_the_step(conn: psycopg.Connection[Any]) -> None:
    wf = Workflow("bad")
    wf.add("a", on("a"))
    with pytest.raises(DuplicateStepError, match="'a'"):
        wf.add("a", on("a"))
    wf.add("b", on("b"), after=["nope"])
    with pytest.raises(UnknownStepError, match="'b' runs after 'nope'"):
        wf.spawn(conn)
    cyc = Workflow("cycle")
    cyc.add("x", on("x"), after=["z"])
    cyc.add("y", on("y"), after=["x"])
    cyc.add("z", on("z"), after=["y"])
    cyc.add("free", on("free"))
    with pytest.raises(
        WorkflowCycleError, match=r"a cycle: (x -> y -> z -> x|y -> z -> x -> y|z -> x -> y -> z)"
    ):
        cyc.spawn(conn)
    selfish = Workflow("self")
    selfish.add("s", on("s"), after=["s"])
    with pytest.raises(WorkflowCycleError, match="'s' runs after itself"):
        selfish.spawn(conn)
    with pytest.raises(ValueError, match="on_parent_failure"):
        Workflow("p").add("a", on("a"), on_parent_failure="maybe")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not one string"):
        Workflow("s").add("b", on("b"), after="a")
    with pytest.raises(ValueError, match="not one string"):
        Step(name="b", builder=on("b"), after="a")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cannot have a job key"):
        Workflow("k").add("a", on("a").set_job_key("k"))
    # nothing reached the database
    assert conn.execute("SELECT count(*) FROM mq_workflows").fetchone() == (0,)


def test_steps_added_to_a_workflow_are_checked_in_the_database(
    conn: psycopg.Connection[Any],
) -> None:
    spawned = _diamond().spawn(conn)
    conn.commit()
    with pytest.raises(UnknownStepError, match="no step named ghost"):
        add_steps(conn, spawned.id, [Step(name="e", builder=on("e"), after=("ghost",))])
    conn.rollback()
    with pytest.raises(DuplicateStepError, match="already has a step named b"):
        add_steps(conn, spawned.id, [Step(name="b", builder=on("b2"))])
    conn.rollback()
    assert [s.name for s in status(conn, spawned.id).steps] == ["a", "b", "c", "d"]


def test_a_join_added_after_its_parents_ended_sees_them(conn: psycopg.Connection[Any]) -> None:
    spawned = _diamond().spawn(conn)
    conn.commit()
    settle(conn, "a")
    settle(conn, "b", result=1)
    # c is still pending: the late join on (a, b) runs at once, the one on (b, c) waits for c
    add_steps(
        conn,
        spawned.id,
        [
            Step(name="late_ab", builder=on("late_ab"), after=("a", "b")),
            Step(name="late_bc", builder=on("late_bc"), after=("b", "c")),
        ],
    )
    conn.commit()
    assert ready(conn, "late_ab")
    assert not ready(conn, "late_bc")
    settle(conn, "c")
    assert ready(conn, "late_bc")


async def test_spawn_on_a_pool_an_async_pool_and_an_autocommit_connection(
    dsn: str, pool: Any, apool: Any
) -> None:
    """A pool lends a connection for a transaction of its own, an autocommit connection gets
    one too: the steps and their workflow land together either way."""
    spawned = [_diamond().spawn(pool), await _diamond().spawn(apool)]
    with psycopg.connect(dsn, autocommit=True) as auto:
        spawned.append(_diamond().spawn(auto))
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as aauto:
        spawned.append(await _diamond().spawn(aauto))
    with psycopg.connect(dsn) as conn:
        for s in spawned:
            assert states(conn, s.id) == {
                "a": "ready",
                "b": "waiting",
                "c": "waiting",
                "d": "waiting",
            }
        row = conn.execute("SELECT count(*) FROM mq_jobs").fetchone()
        assert row == (16,)
