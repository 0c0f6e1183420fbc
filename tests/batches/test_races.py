"""The promise under races: a batch's callbacks are released once, never twice and never not
at all, when its last members end at the same instant in several transactions, and when
members are added while its last member ends."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest

from sqlxmq_py.batch import Batch, BatchFinishedError, BatchStatus, add, batch_status
from sqlxmq_py.pull import complete, fail, fetch

from ..helpers import wait_until
from ._util import callback, callback_states, lease, members, settle


def _batch() -> Batch:
    return (
        Batch()
        .on_success(callback.builder())
        .on_finish(callback.builder())
        .on_discard(callback.builder())
    )


def _status(db: psycopg.Connection[Any], batch_id: uuid.UUID) -> BatchStatus:
    status = batch_status(db, batch_id)
    assert status is not None
    return status


def _commit_together(connections: list[psycopg.Connection[Any]]) -> None:
    """Commits the connections' open transactions from as many threads, released together."""
    barrier = threading.Barrier(len(connections))

    def commit(conn: psycopg.Connection[Any]) -> None:
        barrier.wait()
        conn.commit()

    with ThreadPoolExecutor(len(connections)) as pool:
        for done in [pool.submit(commit, c) for c in connections]:
            done.result()


@pytest.mark.parametrize("last", ["complete", "fail", "mixed"])
def test_the_last_two_members_ending_at_the_same_instant(
    dsn: str, db: psycopg.Connection[Any], last: str
) -> None:
    """Two transactions settle the last two members and commit at the same moment, twenty
    times over: each time the counts are exact and each callback is decided once (released
    or cancelled, never left waiting)."""
    with psycopg.connect(dsn) as one, psycopg.connect(dsn) as two:
        for _ in range(20):
            spawned = _batch().spawn(one, members(2))
            one.commit()
            first, second = lease(one, "m0"), lease(two, "m1")
            if last in ("complete", "mixed"):
                complete(one, first, "one")
            else:
                fail(one, first, "broke")
            if last == "complete":
                complete(two, second, "two")
            else:
                fail(two, second, "broke")
            _commit_together([one, two])
            status = _status(db, spawned.id)
            expected = {"complete": (2, 0), "fail": (0, 2), "mixed": (1, 1)}[last]
            assert (status.pending, status.completed, status.failed) == (0, *expected)
            assert status.state == "finished"
            states = callback_states(db, spawned.id)
            assert states["on_finish"] == "released"
            if last == "complete":
                assert states == {
                    "on_success": "released",
                    "on_finish": "released",
                    "on_discard": "cancelled",
                }
            else:
                assert states == {
                    "on_success": "cancelled",
                    "on_finish": "released",
                    "on_discard": "released",
                }
            db.execute("DELETE FROM mq_jobs")


def test_many_members_ending_in_concurrent_transactions(
    dsn: str, db: psycopg.Connection[Any]
) -> None:
    """300 members, settled one per transaction by 6 threads (one in ten failing for good):
    every end is counted once and each callback is decided once."""
    with psycopg.connect(dsn) as conn:
        spawned = _batch().spawn(conn, [b.set_channel_name("race") for b in members(300)])
        conn.commit()

    def worker(_: int) -> int:
        settled = 0
        with psycopg.connect(dsn) as conn:
            while True:
                fetched = fetch(conn, ["race"])
                conn.commit()
                if not fetched:
                    return settled
                (item,) = fetched
                if item.json() % 10 == 0:
                    fail(conn, item, "broke")
                else:
                    complete(conn, item, item.json())
                conn.commit()
                settled += 1

    with ThreadPoolExecutor(6) as pool:
        assert sum(pool.map(worker, range(6))) == 300
    status = _status(db, spawned.id)
    assert (status.pending, status.completed, status.failed) == (0, 270, 30)
    assert status.state == "finished"
    assert callback_states(db, spawned.id) == {
        "on_success": "cancelled",
        "on_finish": "released",
        "on_discard": "released",
    }
    (completed, total) = db.execute(
        "SELECT count(*) FILTER (WHERE state = 'completed'), count(*) FROM mq_batch_members"
    ).fetchone() or (0, 0)
    assert (completed, total) == (270, 300)


async def test_a_member_added_while_the_last_one_ends(
    dsn: str, db: psycopg.Connection[Any]
) -> None:
    """An add that holds the batch (its transaction still open) while the last member's
    settlement commits: that commit waits, then counts the new member, so the batch does not
    finish until the new member ends."""
    with psycopg.connect(dsn) as adder, psycopg.connect(dsn) as settler:
        spawned = _batch().spawn(adder, members(1))
        adder.commit()
        fetched = lease(settler, "m0")
        added = add(adder, spawned.id, members(1, prefix="late"))
        complete(settler, fetched)
        settler_pid = settler.info.backend_pid
        with ThreadPoolExecutor(1) as pool:
            committing = pool.submit(settler.commit)

            def waits_for_the_batch() -> bool:
                row = db.execute(
                    "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s",
                    (settler_pid,),
                ).fetchone()
                return row is not None and row[0] == "Lock"

            await wait_until(waits_for_the_batch)
            adder.commit()
            committing.result()
        status = _status(db, spawned.id)
        assert (status.total, status.pending, status.completed) == (2, 1, 1)
        assert status.state == "running"
        assert callback_states(db, spawned.id)["on_success"] == "waiting"
        settle(settler, "late0", "complete")
        assert added.member_ids[0] in [
            r[0]
            for r in db.execute(
                "SELECT job_id FROM mq_batch_members WHERE state = 'completed'"
            ).fetchall()
        ]
        assert callback_states(db, spawned.id)["on_success"] == "released"


def test_an_add_after_the_last_member_ended_is_refused(
    dsn: str, db: psycopg.Connection[Any]
) -> None:
    with psycopg.connect(dsn) as adder, psycopg.connect(dsn) as settler:
        spawned = _batch().spawn(adder, members(1))
        adder.commit()
        adder.execute("SELECT 1")  # the adder's transaction starts before the settlement
        settle(settler, "m0", "complete")
        with pytest.raises(BatchFinishedError):
            add(adder, spawned.id, members(1, prefix="late"))
        adder.rollback()
    assert _status(db, spawned.id).total == 1
    assert db.execute("SELECT count(*) FROM mq_jobs WHERE batch_id IS NOT NULL").fetchone() == (0,)


def test_a_member_completed_in_a_long_transaction_holds_up_no_other_member(
    dsn: str, db: psycopg.Connection[Any]
) -> None:
    """The batch's row is locked at commit only: while one member's completion waits in its
    application's open transaction, other members of the batch settle and commit freely."""
    with psycopg.connect(dsn) as slow, psycopg.connect(dsn) as quick:
        spawned = _batch().spawn(slow, members(3))
        slow.commit()
        complete(slow, lease(slow, "m0"))  # not committed yet
        settle(quick, "m1", "complete")
        settle(quick, "m2", "complete")
        assert _status(db, spawned.id).pending == 1
        slow.commit()
    status = _status(db, spawned.id)
    assert (status.pending, status.completed, status.state) == (0, 3, "finished")
