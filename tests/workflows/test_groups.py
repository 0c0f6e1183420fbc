"""Groups bound how many of their steps are released at once, in the order they were added: a
slot frees when a step ends (completed or failed for good), not when an attempt fails; a group
without a limit is not bound; a limit given when adding steps replaces the old one."""

from __future__ import annotations

from typing import Any

import psycopg

from sqlxmq_py.workflow import Step, Workflow, add_steps

from ._util import on, settle, states


def _released(conn: psycopg.Connection[Any], workflow_id: Any) -> list[str]:
    return [name for name, state in states(conn, workflow_id).items() if state != "waiting"]


def test_a_limited_group_releases_in_order_as_slots_free(conn: psycopg.Connection[Any]) -> None:
    wf = Workflow("bounded")
    for i in range(5):
        wf.add(f"g{i}", on(f"g{i}", retries=1), group="g")
    wf.add("free", on("free"))  # no group: not bound
    wf.limit("g", 2)
    spawned = wf.spawn(conn)
    conn.commit()
    assert _released(conn, spawned.id) == ["g0", "g1", "free"]
    settle(conn, "g1")
    assert _released(conn, spawned.id) == ["g0", "g1", "g2", "free"]
    # a failed attempt with attempts left keeps its slot
    settle(conn, "g0", "fail")
    assert states(conn, spawned.id)["g3"] == "waiting"
    # failing for good frees it
    settle(conn, "g0", "fail")
    got = states(conn, spawned.id)
    assert (got["g0"], got["g3"], got["g4"]) == ("failed", "ready", "waiting")


def test_a_group_without_a_limit_and_a_limit_replaced_later(
    conn: psycopg.Connection[Any],
) -> None:
    wf = Workflow("groups")
    wf.add("keep", on("keep"))
    for i in range(3):
        wf.add(f"u{i}", on(f"u{i}"), group="unbounded")
    spawned = wf.spawn(conn)
    conn.commit()
    assert _released(conn, spawned.id) == ["keep", "u0", "u1", "u2"]
    # a later add bounds a new group, then loosens it
    add_steps(
        conn,
        spawned.id,
        [Step(name=f"b{i}", builder=on(f"b{i}"), group="b") for i in range(4)],
        limits={"b": 1},
    )
    conn.commit()
    assert [n for n in _released(conn, spawned.id) if n.startswith("b")] == ["b0"]
    add_steps(conn, spawned.id, [Step(name="b4", builder=on("b4"), group="b")], limits={"b": 3})
    conn.commit()
    # the new limit applies at the next settlement (the add's own): three of b run at once
    assert [n for n in _released(conn, spawned.id) if n.startswith("b")] == ["b0", "b1", "b2"]
