"""How members end and what each end releases: completions, failures for good, retries,
cancellations, deletions and two-phase discards, each counted once and at the right moment."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from sqlxmq_py.admin import cancel, purge, retry
from sqlxmq_py.batch import Batch, BatchStatus, batch_results, batch_status, cancel_batch
from sqlxmq_py.pull import complete, fail, fetch

from ._util import callback, callback_states, lease, members, settle


def _batch() -> Batch:
    return (
        Batch()
        .on_success(callback.builder().set_json("success"))
        .on_finish(callback.builder().set_json("finish"))
        .on_discard(callback.builder().set_json("discard"))
    )


def _status(conn: psycopg.Connection[Any], batch_id: uuid.UUID) -> BatchStatus:
    status = batch_status(conn, batch_id)
    assert status is not None
    conn.commit()
    return status


def _counts(status: BatchStatus) -> tuple[int, int, int, int]:
    return status.pending, status.completed, status.failed, status.cancelled


def _reason(db: psycopg.Connection[Any], job_id: uuid.UUID | None) -> str:
    row = db.execute("SELECT last_error FROM mq_history WHERE id = %s", (job_id,)).fetchone()
    assert row is not None
    return str(row[0])


def test_all_completed_releases_success_and_finish_and_cancels_discard(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    spawned = _batch().spawn(conn, members(3))
    conn.commit()
    for i in range(3):
        assert callback_states(db, spawned.id)["on_finish"] == "waiting"
        settle(conn, f"m{i}", "complete", result={"square": i * i})
    status = _status(conn, spawned.id)
    assert _counts(status) == (0, 3, 0, 0)
    assert status.state == "finished"
    assert status.succeeded
    assert status.expires_at is not None
    assert status.finished_at is not None
    assert status.expires_at - status.finished_at == timedelta(days=7)
    assert callback_states(db, spawned.id) == {
        "on_success": "released",
        "on_finish": "released",
        "on_discard": "cancelled",
    }
    assert "no member was discarded" in _reason(db, status.on_discard)
    results = batch_results(conn, spawned.id)
    assert [(m.job_id, m.state, m.result) for m in results] == [
        (job_id, "completed", {"square": i * i}) for i, job_id in enumerate(spawned.member_ids)
    ]
    assert batch_results(conn, spawned.id, state="pending") == []


def test_a_member_failing_for_good_releases_discard_at_once(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    spawned = _batch().spawn(conn, members(3))
    conn.commit()
    assert settle(conn, "m1", "fail") == "failed"
    status = _status(conn, spawned.id)
    assert _counts(status) == (2, 0, 1, 0)
    assert status.discarded_at is not None
    assert callback_states(db, spawned.id) == {
        "on_success": "waiting",
        "on_finish": "waiting",
        "on_discard": "released",
    }
    settle(conn, "m0", "complete")
    settle(conn, "m2", "complete")
    status = _status(conn, spawned.id)
    assert _counts(status) == (0, 2, 1, 0)
    assert status.succeeded is False
    assert callback_states(db, spawned.id) == {
        "on_success": "cancelled",
        "on_finish": "released",
        "on_discard": "released",
    }
    assert "1 failed and 0 cancelled" in _reason(db, status.on_success)
    (failed,) = batch_results(conn, spawned.id, state="failed")
    assert failed.job_id == spawned.member_ids[1]
    assert failed.error == "broke"


def test_a_member_that_fails_then_succeeds_on_a_retry_is_a_success(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    spawned = _batch().spawn(conn, members(2, retries=2))
    conn.commit()
    assert settle(conn, "m0", "fail") == "retrying"
    assert settle(conn, "m0", "fail") == "retrying"
    status = _status(conn, spawned.id)
    assert _counts(status) == (2, 0, 0, 0)
    assert status.discarded_at is None
    settle(conn, "m0", "complete", result="third time")
    settle(conn, "m1", "complete")
    assert callback_states(db, spawned.id) == {
        "on_success": "released",
        "on_finish": "released",
        "on_discard": "cancelled",
    }
    assert batch_results(conn, spawned.id)[0].result == "third time"


def test_a_lease_that_expires_on_the_last_attempt_counts_as_failed(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    spawned = _batch().spawn(conn, members(1))
    conn.commit()
    lease(conn, "m0")
    # the lease ran out (its holder died): the next fetch expires it, on its last attempt
    db.execute("UPDATE mq_jobs SET attempt_at = now() - interval '1 s' WHERE state = 'l'")
    assert fetch(conn, ["nothing"]) == []
    conn.commit()
    status = _status(conn, spawned.id)
    assert _counts(status) == (0, 0, 1, 0)
    assert status.state == "finished"
    (failed,) = batch_results(conn, spawned.id)
    assert failed.error is not None
    assert "lease expired" in failed.error


def test_a_failed_member_retried_by_hand_is_pending_again(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    spawned = _batch().spawn(conn, members(2))
    conn.commit()
    settle(conn, "m0", "fail")
    assert retry(conn, [spawned.member_ids[0]]) == [spawned.member_ids[0]]
    conn.commit()
    status = _status(conn, spawned.id)
    assert _counts(status) == (2, 0, 0, 0)
    assert batch_results(conn, spawned.id)[0].state == "pending"
    settle(conn, "m0", "complete")
    settle(conn, "m1", "complete")
    # on_discard was released when the member failed; it is not taken back
    assert callback_states(db, spawned.id) == {
        "on_success": "released",
        "on_finish": "released",
        "on_discard": "released",
    }


def test_a_purged_failed_member_stays_failed(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    spawned = _batch().spawn(conn, members(2))
    conn.commit()
    settle(conn, "m0", "fail")
    assert purge(conn, failed_before=timedelta(0)).failed == 1
    conn.commit()
    settle(conn, "m1", "complete")
    assert _counts(_status(conn, spawned.id)) == (0, 1, 1, 0)


def test_cancelled_members_count_as_cancelled(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    spawned = _batch().spawn(conn, members(3))
    conn.commit()
    waiting, running, _ = spawned.member_ids
    fetched = lease(conn, "m1")
    assert cancel(conn, [waiting, running]) == {waiting: "cancelled", running: "requested"}
    conn.commit()
    assert _counts(_status(conn, spawned.id)) == (2, 0, 0, 1)
    assert callback_states(db, spawned.id)["on_discard"] == "released"
    # the running member's runner sees the request and stops it: cancelled, not failed
    assert fail(conn, fetched, "stopped") == "cancelled"
    conn.commit()
    settle(conn, "m2", "complete")
    status = _status(conn, spawned.id)
    assert _counts(status) == (0, 1, 0, 2)
    assert status.state == "finished"
    assert "0 failed and 2 cancelled" in _reason(db, status.on_success)
    assert {m.state for m in batch_results(conn, spawned.id, state="cancelled")} == {"cancelled"}


def test_cancel_batch_seals_and_cancels_the_pending_members(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    spawned = _batch().spawn(conn, members(3), seal=False)
    conn.commit()
    settle(conn, "m0", "complete")
    fetched = lease(conn, "m1")
    assert cancel_batch(conn, spawned.id, "no longer needed") == (1, 1)
    conn.commit()
    status = _status(conn, spawned.id)
    assert status.sealed
    assert _counts(status) == (1, 1, 0, 1)
    assert callback_states(db, spawned.id)["on_finish"] == "waiting"
    complete(conn, fetched)  # the running member finished anyway
    conn.commit()
    status = _status(conn, spawned.id)
    assert _counts(status) == (0, 2, 0, 1)
    assert status.state == "finished"
    cancelled = batch_results(conn, spawned.id, state="cancelled")
    assert [m.error for m in cancelled] == ["no longer needed"]


def test_a_member_deleted_by_hand_counts_as_cancelled(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    spawned = _batch().spawn(conn, members(1))
    conn.commit()
    db.execute("DELETE FROM mq_jobs WHERE id = %s", (spawned.member_ids[0],))
    status = _status(conn, spawned.id)
    assert _counts(status) == (0, 0, 0, 1)
    assert status.state == "finished"
    assert batch_results(conn, spawned.id)[0].error == "deleted from the queue"


def test_a_two_phase_member_discarded_at_its_deadline_counts_as_cancelled(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    spawned = _batch().spawn(conn, [members(1)[0].set_commit_interval(60)])
    conn.commit()
    db.execute("UPDATE mq_jobs SET commit_deadline = now() - interval '1 s' WHERE state = 'u'")
    events = db.execute("SELECT event FROM mq_maintain()").fetchall()
    assert ("uncommitted_job_discarded",) in events
    status = _status(conn, spawned.id)
    assert _counts(status) == (0, 0, 0, 1)
    assert status.state == "finished"


def test_a_rolled_back_settlement_counts_nothing(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    spawned = _batch().spawn(conn, members(1))
    conn.commit()
    fetched = lease(conn, "m0")
    complete(conn, fetched)
    conn.rollback()
    assert _counts(_status(conn, spawned.id)) == (1, 0, 0, 0)
    assert callback_states(db, spawned.id)["on_finish"] == "waiting"
    complete(conn, fetched)
    conn.commit()
    assert _counts(_status(conn, spawned.id)) == (0, 1, 0, 0)


def test_a_member_settled_in_the_spawning_transaction(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    spawned = _batch().spawn(conn, members(2))
    cancel(conn, [spawned.member_ids[0]])
    conn.commit()
    assert _counts(_status(conn, spawned.id)) == (1, 0, 0, 1)


@pytest.mark.parametrize("immediate", [False, True])
def test_one_transaction_settling_members_of_several_batches(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], immediate: bool
) -> None:
    """With the settlement deferred to the commit (the default) or run at once (SET
    CONSTRAINTS ALL IMMEDIATE), each batch counts its own members."""
    first = _batch().spawn(conn, members(2, prefix="a"))
    second = _batch().spawn(conn, members(2, prefix="b"))
    conn.commit()
    fetched = fetch(conn, ["a0", "a1", "b0", "b1"], limit=4)
    conn.commit()
    if immediate:
        conn.execute("SET CONSTRAINTS ALL IMMEDIATE")
    for item in fetched:
        complete(conn, item, item.channel_name)
    conn.commit()
    for spawned in (first, second):
        status = _status(conn, spawned.id)
        assert _counts(status) == (0, 2, 0, 0)
        assert status.succeeded
        assert callback_states(db, spawned.id)["on_success"] == "released"
