"""Spawning batches and adding to them: one round trip in the caller's transaction, the
callbacks held back, and bad input refused with typed errors."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import pq
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from sqlxmq_py import ConfigurationError
from sqlxmq_py.admin import JobStatus, job_status
from sqlxmq_py.batch import (
    BATCH_HEADER,
    Batch,
    BatchFinishedError,
    BatchNotFoundError,
    EmptyBatchError,
    add,
    batch_id_of,
    batch_results,
    batch_status,
    cancel_batch,
    seal,
)

from ._util import callback, callback_states, members, settle


def _batch() -> Batch:
    return (
        Batch()
        .on_success(callback.builder().set_json("success"))
        .on_finish(callback.builder().set_json("finish"))
        .on_discard(callback.builder().set_json("discard"))
    )


def _count(db: psycopg.Connection[Any], table: str) -> int:
    row = db.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


def test_spawn_writes_members_and_holds_callbacks_back(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    spawned = _batch().spawn(conn, members(3))
    conn.commit()
    assert len(spawned.member_ids) == 3
    status = spawned.status
    assert (status.total, status.pending, status.completed) == (3, 3, 0)
    assert status.sealed
    assert status.state == "running"
    assert status.succeeded is None
    rows = db.execute(
        "SELECT id, state::text, batch_id FROM mq_jobs WHERE id = ANY(%s) ORDER BY id",
        (spawned.member_ids,),
    ).fetchall()
    assert rows == [(i, "r", spawned.id) for i in spawned.member_ids]
    assert callback_states(db, spawned.id) == {
        "on_success": "waiting",
        "on_finish": "waiting",
        "on_discard": "waiting",
    }
    # callbacks are no members
    assert db.execute("SELECT count(*) FROM mq_jobs WHERE batch_id IS NOT NULL").fetchone() == (3,)
    assert [m.state for m in batch_results(conn, spawned.id)] == ["pending"] * 3


def test_spawn_and_add_are_one_round_trip_each(
    conn: psycopg.Connection[Any], tmp_path: Path
) -> None:
    """libpq's trace of the client's messages: one Sync (the end of one round trip) for the
    members, the callbacks and the batch, and one for an add."""
    conn.execute("SELECT 1")  # psycopg's BEGIN, a round trip of its own, is behind us
    trace = tmp_path / "trace"
    with trace.open("w") as out:
        conn.pgconn.trace(out.fileno())
        conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
        spawned = _batch().spawn(conn, members(5), seal=False)
        out.flush()
        syncs_spawn = trace.read_text().count("\tSync")
        add(conn, spawned.id, members(50, prefix="more"))
        out.flush()
        conn.pgconn.untrace()
    syncs_all = trace.read_text().count("\tSync")
    assert (syncs_spawn, syncs_all) == (1, 2)
    conn.commit()
    status = batch_status(conn, spawned.id)
    assert status is not None
    assert status.total == 55


def test_the_builders_given_are_not_changed(conn: psycopg.Connection[Any]) -> None:
    builders = members(2)
    on_success = callback.builder()
    batch = Batch().on_success(on_success)
    batch.spawn(conn, builders)
    batch.spawn(conn, builders)  # the same builders again: new ids, no duplicate key
    conn.commit()
    assert all(b._id is None and not b.headers for b in builders)
    assert on_success._id is None
    assert not on_success.headers


def test_members_and_callbacks_carry_the_batch_header(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    spawned = _batch().spawn(conn, members(1))
    conn.commit()
    status = spawned.status
    for job_id in [*spawned.member_ids, status.on_success, status.on_finish, status.on_discard]:
        assert job_id is not None
        found = job_status(conn, job_id)
        assert isinstance(found, JobStatus)
        (headers,) = db.execute(
            "SELECT headers FROM mq_payloads WHERE id = %s", (job_id,)
        ).fetchone() or (None,)
        assert headers == {BATCH_HEADER: str(spawned.id)}


class _Headers:
    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers


def test_batch_id_of_reads_the_header() -> None:
    batch_id = uuid.uuid4()
    assert batch_id_of(_Headers({BATCH_HEADER: str(batch_id)})) == batch_id
    assert batch_id_of(_Headers({})) is None
    assert batch_id_of(_Headers({BATCH_HEADER: "not a uuid"})) is None


def test_members_not_kept_are_kept_for_the_batch(conn: psycopg.Connection[Any]) -> None:
    kept = members(1)[0].set_retain_for(timedelta(days=30))
    spawned = Batch(retain_for=timedelta(hours=2)).spawn(conn, [*members(1), kept])
    conn.commit()
    rows = conn.execute(
        "SELECT retain_for FROM mq_payloads WHERE id = ANY(%s) ORDER BY id",
        (spawned.member_ids,),
    ).fetchall()
    assert rows == [(timedelta(hours=2),), (timedelta(days=30),)]
    added = add(conn, spawned.id, [*members(1, prefix="late"), kept.copy()])
    conn.commit()
    rows = conn.execute(
        "SELECT retain_for FROM mq_payloads WHERE id = ANY(%s) ORDER BY id",
        (added.member_ids,),
    ).fetchall()
    assert rows == [(timedelta(hours=2),), (timedelta(days=30),)]


def test_a_rolled_back_spawn_leaves_nothing(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    spawned = _batch().spawn(conn, members(4))
    conn.rollback()
    for table in ("mq_jobs", "mq_payloads", "mq_batches", "mq_batch_members"):
        assert _count(db, table) == 0, table
    assert batch_status(conn, spawned.id) is None
    with pytest.raises(BatchNotFoundError):
        add(conn, spawned.id, members(1))
    conn.rollback()


def test_autocommit_connections_and_pools(
    dsn: str, pool: ConnectionPool[Any], db: psycopg.Connection[Any]
) -> None:
    with psycopg.connect(dsn, autocommit=True) as auto:
        first = _batch().spawn(auto, members(2))
    second = _batch().spawn(pool, members(2))
    for spawned in (first, second):
        status = batch_status(db, spawned.id)
        assert status is not None
        assert status.total == 2


async def test_async_connections_and_pools(
    aconn: psycopg.AsyncConnection[Any], apool: AsyncConnectionPool[Any]
) -> None:
    spawned = await _batch().spawn(aconn, members(2), seal=False)
    added = await add(aconn, spawned.id, members(1, prefix="x"))
    assert added.member_ids != spawned.member_ids
    assert added.status.total == 3
    sealed = await seal(aconn, spawned.id)
    assert sealed.sealed
    await aconn.commit()
    status = await batch_status(apool, spawned.id)
    assert status is not None
    assert status.total == 3
    assert len(await batch_results(apool, spawned.id)) == 3
    assert await cancel_batch(apool, spawned.id) == (3, 0)
    finished = await batch_status(apool, spawned.id)
    assert finished is not None
    assert finished.state == "finished"
    assert (finished.cancelled, finished.succeeded) == (3, False)


def test_an_open_batch_does_not_finish_until_sealed(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    spawned = _batch().spawn(conn, members(1), seal=False)
    conn.commit()
    settle(conn, "m0", "complete")
    status = batch_status(conn, spawned.id)
    assert status is not None
    assert status.state == "open"
    assert status.pending == 0
    assert callback_states(db, spawned.id)["on_success"] == "waiting"
    add(conn, spawned.id, members(1, prefix="late"))
    conn.commit()
    seal(conn, spawned.id)
    conn.commit()
    assert callback_states(db, spawned.id)["on_success"] == "waiting"
    settle(conn, "late0", "complete")
    assert callback_states(db, spawned.id) == {
        "on_success": "released",
        "on_finish": "released",
        "on_discard": "cancelled",
    }


def test_sealing_a_batch_whose_members_all_ended_finishes_it(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    spawned = _batch().spawn(conn, members(1), seal=False)
    conn.commit()
    settle(conn, "m0", "complete")
    status = seal(conn, spawned.id)
    conn.commit()
    assert status.state == "finished"
    assert status.succeeded
    assert callback_states(db, spawned.id)["on_finish"] == "released"
    assert seal(conn, spawned.id).finished_at == status.finished_at  # sealing again: no change


def test_empty_batches_are_refused(conn: psycopg.Connection[Any]) -> None:
    with pytest.raises(EmptyBatchError, match="at least one member"):
        _batch().spawn(conn, [])
    spawned = _batch().spawn(conn, [], seal=False)
    conn.commit()
    assert spawned.status.total == 0
    assert spawned.status.state == "open"
    with pytest.raises(EmptyBatchError, match="no member"):
        seal(conn, spawned.id)
    conn.rollback()
    with pytest.raises(EmptyBatchError):
        add(conn, spawned.id, [])
    assert issubclass(EmptyBatchError, ConfigurationError)


def test_unknown_batches_are_refused(conn: psycopg.Connection[Any]) -> None:
    unknown = uuid.uuid4()
    assert batch_status(conn, unknown) is None
    assert batch_results(conn, unknown) == []
    for attempt in (
        lambda: add(conn, unknown, members(1)),
        lambda: seal(conn, unknown),
        lambda: cancel_batch(conn, unknown),
    ):
        with pytest.raises(BatchNotFoundError, match=str(unknown)):
            attempt()
        conn.rollback()
    assert conn.execute("SELECT count(*) FROM mq_jobs").fetchone() == (0,)


def test_adding_to_a_finished_batch_is_refused(conn: psycopg.Connection[Any]) -> None:
    spawned = _batch().spawn(conn, members(1))
    conn.commit()
    settle(conn, "m0", "complete")
    with pytest.raises(BatchFinishedError, match="already finished"):
        add(conn, spawned.id, members(1, prefix="late"))
    conn.rollback()
    assert conn.execute("SELECT count(*) FROM mq_batch_members").fetchone() == (1,)


def test_bad_builders_are_refused(conn: psycopg.Connection[Any]) -> None:
    with pytest.raises(ConfigurationError, match="job key"):
        Batch().spawn(conn, [members(1)[0].set_job_key("k")])
    with pytest.raises(ConfigurationError, match="JobBuilder"):
        Batch().spawn(conn, ["not a builder"])  # type: ignore[list-item]
    with pytest.raises(ConfigurationError, match="not one builder"):
        Batch().spawn(conn, members(1)[0])  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="parents"):
        Batch().on_success(callback.builder().set_after([uuid.uuid4()]))
    with pytest.raises(ConfigurationError, match="ordered"):
        Batch().on_finish(callback.builder().set_ordered())
    with pytest.raises(ConfigurationError, match="commit interval"):
        Batch().on_discard(callback.builder().set_commit_interval(5))
    with pytest.raises(ConfigurationError, match="job key"):
        Batch().on_discard(callback.builder().set_job_key("k"))
    with pytest.raises(ConfigurationError, match="JobBuilder"):
        Batch().on_success("report")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="retain_for"):
        Batch(retain_for=0)
    with pytest.raises(ConfigurationError, match="batch_id"):
        batch_status(conn, "not a uuid")  # type: ignore[call-overload]
    with pytest.raises(ConfigurationError, match="state"):
        batch_results(conn, uuid.uuid4(), state="done")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="seal"):
        Batch().spawn(conn, members(1), seal="yes")  # type: ignore[arg-type]


def test_a_batch_is_immutable_and_reusable() -> None:
    base = Batch()
    with_success = base.on_success(callback.builder())
    assert base.callbacks == {}
    assert set(with_success.callbacks) == {"on_success"}
    assert "on_success" in repr(with_success)


def test_a_member_can_be_a_continuation(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    """A member whose parent already failed is cancelled by its own spawn: it joins the batch
    as cancelled, and the batch's discard callback is released at once."""
    parent_id = members(1, prefix="parent")[0].spawn(conn)
    conn.commit()
    settle(conn, "parent0", "fail")
    spawned = _batch().spawn(conn, [members(1)[0].set_after([parent_id])])
    conn.commit()
    status = batch_status(conn, spawned.id)
    assert status is not None
    assert (status.pending, status.cancelled, status.state) == (0, 1, "finished")
    (only,) = batch_results(conn, spawned.id)
    assert only.state == "cancelled"
    assert only.error is not None
    assert callback_states(db, spawned.id) == {
        "on_success": "cancelled",
        "on_finish": "released",
        "on_discard": "released",
    }
