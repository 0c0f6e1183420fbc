"""Issues 9.11 and 9.13: jobs released by concurrent transactions must be ready when those
transactions have committed, without waiting for a runner's maintenance sweep (pull consumers
run no maintenance at all). No runner runs in these tests.

- a child of two parents whose completions commit at the same moment (9.11);
- an ordered chain A, B, C whose A and B are cancelled by two overlapping transactions (9.13a);
- a continuation spawned while its parent's completion is in flight (9.13b).
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest

from sqlxmq_py import CurrentJob, job, spawn_many
from sqlxmq_py.admin import cancel
from sqlxmq_py.pull import complete, fetch

from ..helpers import wait_until
from .conftest import state

pytestmark = pytest.mark.timeout(60)  # a hang (a partial fix) fails within a minute


@job(channel_name="parents")
async def parent(current_job: CurrentJob) -> None: ...


@job(channel_name="children")
async def child(current_job: CurrentJob) -> None: ...


@job(channel_name="chain", ordered=True)
async def link(current_job: CurrentJob) -> None: ...


def waits_for_a_lock(db: psycopg.Connection[Any], conn: psycopg.Connection[Any]) -> bool:
    """Whether ``conn``'s backend is blocked on a lock."""
    row = db.execute(
        "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s",
        (conn.info.backend_pid,),
    ).fetchone()
    return bool(row and row[0])


async def overlapped(
    db: psycopg.Connection[Any],
    first: tuple[psycopg.Connection[Any], Callable[[], object]],
    second: tuple[psycopg.Connection[Any], Callable[[], object]],
) -> None:
    """Runs ``first`` in its connection's transaction, then ``second`` in its own while the
    first is still open (``second`` may block on the first's locks: it runs in a thread), then
    commits the first and, once ``second`` returned, the second."""
    (first_conn, first_action), (second_conn, second_action) = first, second
    first_action()
    running = asyncio.ensure_future(asyncio.to_thread(second_action))
    await wait_until(lambda: running.done() or waits_for_a_lock(db, second_conn), timeout=10)
    first_conn.commit()
    await asyncio.wait_for(running, 10)
    second_conn.commit()


PAIRS = 100


def test_a_child_of_two_parents_completed_at_the_same_moment_is_ready(
    dsn: str, db: psycopg.Connection[Any]
) -> None:
    """issue 9.11: two parents are fetched with the pull API and completed by two transactions
    on two connections released together by a barrier, 100 times: after both commits the child
    is ready every time (never left waiting), with no runner."""
    left_waiting: list[tuple[int, str]] = []
    with (
        psycopg.connect(dsn) as first,
        psycopg.connect(dsn) as second,
        ThreadPoolExecutor(2) as threads,
    ):
        for n in range(PAIRS):
            parents = spawn_many(db, [parent.builder(), parent.builder()])
            child_id = child.builder().set_after(parents).spawn(db)
            fetched = fetch(db, ["parents"], limit=2)
            assert sorted(f.id for f in fetched) == sorted(parents)
            barrier = threading.Barrier(2)

            def finish(conn: psycopg.Connection[Any], job: Any, go: threading.Barrier) -> None:
                go.wait(timeout=10)
                with conn.transaction():
                    complete(conn, job)

            done = [
                threads.submit(finish, c, f, barrier)
                for c, f in zip((first, second), fetched, strict=True)
            ]
            for future in done:
                future.result(timeout=30)
            found = state(db, child_id)
            if found != "ready":
                left_waiting.append((n, found))
    assert left_waiting == [], (
        f"{len(left_waiting)} of {PAIRS} children not ready: {left_waiting[:5]}"
    )


ORDERS = ["B then A", "A then B"]


@pytest.mark.parametrize("order", ORDERS)
async def test_the_rest_of_an_ordered_chain_is_ready_after_overlapping_cancels(
    dsn: str, db: psycopg.Connection[Any], order: str
) -> None:
    """issue 9.13a: an ordered chain A, B, C (one group, no runner); A and B are cancelled by
    two transactions that are in flight at once (the second one's cancel runs before the first
    commits), then both commit: C is ready at once, with no runner maintenance. Repeated on 10
    chains."""
    not_ready: list[tuple[int, str]] = []
    with psycopg.connect(dsn) as conn_a, psycopg.connect(dsn) as conn_b:
        for n in range(10):
            a, b, c = spawn_many(db, [link.builder().set_channel_args(f"c{n}") for _ in range(3)])
            assert [state(db, i) for i in (a, b, c)] == ["ready", "waiting", "waiting"]
            cancel_a = (conn_a, lambda a=a: cancel(conn_a, [a]))
            cancel_b = (conn_b, lambda b=b: cancel(conn_b, [b]))
            if order == "B then A":
                await overlapped(db, cancel_b, cancel_a)
            else:
                await overlapped(db, cancel_a, cancel_b)
            assert state(db, a) == "cancelled"
            assert state(db, b) == "cancelled"
            found = state(db, c)
            if found != "ready":
                not_ready.append((n, found))
    assert not_ready == [], f"C not ready after both cancels committed: {not_ready}"


@pytest.mark.parametrize("order", ["completion first", "spawn first"])
async def test_a_continuation_spawned_during_its_parents_completion_is_ready(
    dsn: str, db: psycopg.Connection[Any], order: str
) -> None:
    """issue 9.13b: a continuation (``set_after([P])``) is spawned in a transaction that
    overlaps P's completion through the pull API; once both committed the child is ready, with
    no runner. Repeated 10 times."""
    not_ready: list[tuple[int, str]] = []
    with psycopg.connect(dsn) as completing, psycopg.connect(dsn) as spawning:
        for n in range(10):
            parent_id = parent.builder().spawn(db)
            (fetched,) = fetch(db, ["parents"], limit=1)
            assert fetched.id == parent_id
            child_id = uuid.uuid4()
            builder = child.builder().set_id(child_id).set_after([parent_id])
            finish = (completing, lambda f=fetched: complete(completing, f))
            spawn = (spawning, lambda b=builder: b.spawn(spawning))
            if order == "completion first":
                await overlapped(db, finish, spawn)
            else:
                await overlapped(db, spawn, finish)
            assert state(db, parent_id) == "gone"
            found = state(db, child_id)
            if found != "ready":
                not_ready.append((n, found))
    assert not_ready == [], f"children not ready after both commits: {not_ready}"
