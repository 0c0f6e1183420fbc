"""History in daily partitions (migrations/0013_history_partitions.sql): the upkeep drops whole
days once they are past, while runners keep writing today's; a row for a day without a
partition lands in the default one and gets its own day on the next pass; lookups by id find
a kept job whichever day holds it, with an index probe per partition."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import psycopg
import pytest
import structlog

from sqlxmq_py import CurrentJob, job, spawn_many
from sqlxmq_py.admin import job_status
from sqlxmq_py.pull import complete, fetch
from sqlxmq_py.results import wait_for_result
from sqlxmq_py.sql import query

from ..helpers import Runner, maintenance_passed, wait_until
from ._util import history_count, history_row


@pytest.fixture
def owner(owner_dsn: str) -> Iterator[psycopg.Connection[Any]]:
    """The schema owner (only it may make partitions by hand, as these tests do to stand for
    days gone by)."""
    with psycopg.connect(owner_dsn, autocommit=True) as c:
        yield c


def _today(db: psycopg.Connection[Any]) -> date:
    row = db.execute("SELECT (now() AT TIME ZONE 'UTC')::date").fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


def _partitions(db: psycopg.Connection[Any]) -> set[str]:
    rows = db.execute(
        "SELECT c.relname FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'mq_history'::regclass"
    ).fetchall()
    return {r[0] for r in rows}


def _day_name(day: date) -> str:
    return f"mq_history_p{day:%Y%m%d}"


def _holder(db: psycopg.Connection[Any], job_id: object) -> str | None:
    """The partition that holds the job's history row."""
    row = db.execute(
        "SELECT tableoid::regclass::text FROM mq_history WHERE id = %s", (job_id,)
    ).fetchone()
    return None if row is None else str(row[0])


def _fill_past_day(owner: psycopg.Connection[Any], days_ago: int, rows: int) -> str:
    """A partition for a day wholly past, holding ``rows`` kept jobs that expired that day."""
    row = owner.execute(
        "SELECT mq_history_partition(((now() AT TIME ZONE 'UTC')::date - %s::integer))",
        (days_ago,),
    ).fetchone()
    assert row == (True,)
    owner.execute(
        "INSERT INTO mq_history (id, name, channel_name, channel_args, state, attempts,"
        " max_attempts, priority, created_at, expires_at)"
        " SELECT gen_random_uuid(), 'old', 'old', '', 'completed', 1, 1, 0, now(),"
        " date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
        "   - make_interval(days => %s) + interval '12 hours'"
        " FROM generate_series(1, %s)",
        (days_ago, rows),
    )
    return _day_name(_today(owner) - timedelta(days=days_ago))


def test_a_fresh_schema_has_today_tomorrow_and_a_default(db: psycopg.Connection[Any]) -> None:
    today = _today(db)
    assert {_day_name(today), _day_name(today + timedelta(days=1)), "mq_history_default"} <= (
        _partitions(db)
    )


async def test_the_runner_drops_days_wholly_past_and_keeps_today(
    conn: psycopg.Connection[Any],
    db: psycopg.Connection[Any],
    owner: psycopg.Connection[Any],
    runner: Runner,
) -> None:
    @job(retain_for=timedelta(milliseconds=1))
    async def brief(current_job: CurrentJob) -> str:
        return "short-lived"

    @job(retain_for=timedelta(hours=1))
    async def lasting(current_job: CurrentJob) -> str:
        return "long-lived"

    brief_id = brief.builder().spawn(conn)
    lasting_id = lasting.builder().spawn(conn)
    conn.commit()
    old = _fill_past_day(owner, 2, 50)
    with structlog.testing.capture_logs() as logs:
        async with runner([brief, lasting]):
            # (a day that ended since the template was made would be dropped too: at least)
            await wait_until(lambda: old not in _partitions(db) and bool(_dropped(logs)))
            await _expired_today_stays_until_its_day_is_past(db, owner, brief_id, lasting_id)
            await wait_until(lambda: sum(count for _, count in _dropped(logs)) >= 2)
    assert {level for level, _ in _dropped(logs)} == {"info"}
    assert history_row(db, lasting_id) is not None
    assert history_count(db, "name = 'old'") == 0


def _dropped(logs: list[dict[str, Any]]) -> list[tuple[str, int]]:
    """The runner's history_partitions_dropped log events: (level, count)."""
    events = [e for e in logs if e["event"] == "history_partitions_dropped"]
    return [(e["log_level"], e["count"]) for e in events]


async def _expired_today_stays_until_its_day_is_past(
    db: psycopg.Connection[Any],
    owner: psycopg.Connection[Any],
    brief_id: uuid.UUID,
    lasting_id: uuid.UUID,
) -> None:
    """A row past its expires_at stays until its whole day is past, then goes with the day."""
    await wait_until(lambda: history_count(db) == 2)
    await maintenance_passed(db)
    # expired, but its day is not over: it stays until the whole day goes
    expired = history_row(db, brief_id)
    assert expired is not None
    assert expired["result_text"] == '"short-lived"'
    assert history_row(db, lasting_id) is not None
    # once its day is past (standing in: the row moved three days back), it goes
    three_days_ago = _fill_past_day(owner, 3, 0)
    db.execute(
        "UPDATE mq_history SET expires_at = expires_at - interval '3 days' WHERE id = %s",
        (brief_id,),
    )
    db.commit()
    await wait_until(lambda: three_days_ago not in _partitions(db))
    assert history_row(db, brief_id) is None


async def test_retention_drops_a_partition_while_a_runner_writes_history(
    conn: psycopg.Connection[Any],
    db: psycopg.Connection[Any],
    owner: psycopg.Connection[Any],
    runner: Runner,
) -> None:
    @job(retain_for=timedelta(hours=1))
    async def kept(current_job: CurrentJob) -> int:
        return int(current_job.json())

    spawned: list[Any] = []

    def spawn_some() -> None:
        start = len(spawned)
        spawned.extend(
            spawn_many(conn, [kept.builder().set_json(i) for i in range(start, start + 25)])
        )
        conn.commit()

    spawn_some()
    async with runner([kept], concurrency=(8, 16)) as handle:
        # history is being written when the old days appear, and all the time they are dropped
        await wait_until(lambda: history_count(db, "name <> 'old'") > 0)
        old_days = [_fill_past_day(owner, days, 2000) for days in (2, 3, 4)]
        while set(old_days) & _partitions(db):
            spawn_some()
            await asyncio.sleep(0)  # let the runner take the jobs just spawned
            await wait_until(lambda: handle.num_running_jobs() < 16)
        spawn_some()
        await wait_until(lambda: history_count(db) == len(spawned), timeout=30)
    rows = db.execute("SELECT id, result::text FROM mq_history").fetchall()
    assert sorted(r[0] for r in rows) == sorted(spawned)  # none lost, none twice
    assert sorted(int(r[1]) for r in rows) == list(range(len(spawned)))
    assert db.execute("SELECT count(*) FROM mq_jobs").fetchone() == (0,)


async def test_a_job_expiring_beyond_every_partition_is_kept_and_gets_its_day(
    conn: psycopg.Connection[Any], dsn: str, db: psycopg.Connection[Any], runner: Runner
) -> None:
    @job
    async def task(current_job: CurrentJob) -> None:
        pass

    far, near = spawn_many(conn, [task.builder(), task.builder()])
    conn.commit()
    fetched = {j.id: j for j in fetch(conn, limit=2)}
    complete(conn, fetched[far], {"far": True}, retain_for=timedelta(days=3650))
    complete(conn, fetched[near], {"near": True}, retain_for=timedelta(minutes=5))
    conn.commit()
    assert _holder(db, far) == "mq_history_default"  # the insert did not fail
    status = job_status(db, far)
    assert status is not None
    assert status.state == "completed"
    far_day = db.execute(
        "SELECT 'mq_history_p' || to_char(expires_at AT TIME ZONE 'UTC', 'YYYYMMDD')"
        " FROM mq_history WHERE id = %s",
        (far,),
    ).fetchone()[0]  # type: ignore[index]
    async with runner([task]):
        await wait_until(lambda: _holder(db, far) == far_day)
    assert _holder(db, near) != "mq_history_default"
    with psycopg.connect(dsn, autocommit=True) as waiter:
        assert wait_for_result(waiter, far, timeout=5) == {"far": True}
        assert wait_for_result(waiter, near, timeout=5) == {"near": True}


async def test_results_are_found_whichever_day_holds_them(
    conn: psycopg.Connection[Any],
    dsn: str,
    db: psycopg.Connection[Any],
    runner: Runner,
) -> None:
    retentions = [timedelta(minutes=1), timedelta(days=1), timedelta(days=3), timedelta(days=40)]

    @job
    async def task(current_job: CurrentJob) -> Any:
        return current_job.json()

    ids = spawn_many(conn, [task.builder().set_json(i) for i in range(len(retentions))])
    conn.commit()
    fetched = {j.id: j for j in fetch(conn, limit=len(ids))}
    for i, (job_id, retain) in enumerate(zip(ids, retentions, strict=True)):
        complete(conn, fetched[job_id], {"n": i}, retain_for=retain)
    conn.commit()
    async with runner([task]):
        await maintenance_passed(db)
    holders = {_holder(db, job_id) for job_id in ids}
    assert len(holders) == len(ids)  # four different days
    assert "mq_history_default" not in holders
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as waiter:
        for i, job_id in enumerate(ids):
            assert await wait_for_result(waiter, job_id, timeout=5) == {"n": i}
            status = await job_status(waiter, job_id)
            assert status is not None
            assert status.state == "completed"


def test_a_lookup_by_id_probes_each_partition_index_and_reads_one_row(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], owner: psycopg.Connection[Any]
) -> None:
    @job
    async def task(current_job: CurrentJob) -> None:
        pass

    for days in range(1, 6):
        owner.execute("SELECT mq_history_partition(%s)", (_today(owner) + timedelta(days=days),))
    owner.execute(
        "INSERT INTO mq_history (id, name, channel_name, channel_args, state, attempts,"
        " max_attempts, priority, created_at, expires_at)"
        " SELECT gen_random_uuid(), 'filler', 'c', '', 'completed', 1, 1, 0, now(),"
        " now() + make_interval(days => i % 6, hours => 1)"
        " FROM generate_series(1, 30000) AS i"
    )
    owner.execute("ANALYZE mq_history")
    job_id = task.builder().spawn(conn)
    conn.commit()
    (fetched,) = fetch(conn, limit=1)
    complete(conn, fetched, retain_for=timedelta(days=2))
    conn.commit()
    plan_row = db.execute(
        b"EXPLAIN (ANALYZE, FORMAT JSON) " + query("status"), {"id": job_id}
    ).fetchone()
    assert plan_row is not None
    document = plan_row[0] if isinstance(plan_row[0], list) else json.loads(plan_row[0])
    stack = [document[0]["Plan"]]
    scans: dict[str, tuple[str, float]] = {}
    while stack:
        node = stack.pop()
        stack.extend(node.get("Plans", ()))
        relation = node.get("Relation Name", "")
        if relation.startswith("mq_history"):
            scans[relation] = (node["Node Type"], node["Actual Rows"])
    assert set(scans) == _partitions(db)
    # the default partition is empty (no stray rows): the planner may read its no pages
    days = {name: kind for name, (kind, _) in scans.items() if name != "mq_history_default"}
    assert set(days.values()) <= {"Index Scan", "Index Only Scan"}, scans
    assert sorted(rows for _, rows in scans.values())[-1] == 1
    assert sum(rows for _, rows in scans.values()) == 1


def test_a_drop_held_off_by_an_open_writer_waits_for_the_next_pass(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], owner: psycopg.Connection[Any]
) -> None:
    @job
    async def task(current_job: CurrentJob) -> None:
        pass

    old = _fill_past_day(owner, 2, 10)
    task.builder().spawn(conn)
    conn.commit()
    (fetched,) = fetch(conn, limit=1)
    conn.commit()
    # an application completes a job inside its own transaction, still open
    complete(conn, fetched, retain_for=timedelta(hours=1))
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
    # the upkeep neither waits for it nor fails: it leaves the drop to a later pass
    assert db.execute("SELECT mq_history_rotate()").fetchone() == (0,)
    db.commit()
    assert old in _partitions(db)
    conn.commit()
    assert db.execute("SELECT mq_history_rotate()").fetchone() == (1,)
    db.commit()
    assert old not in _partitions(db)
    assert history_count(db) == 1


def test_a_writer_in_the_default_partition_holds_off_the_move_not_the_upkeep(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    @job
    async def task(current_job: CurrentJob) -> None:
        pass

    first, second = spawn_many(conn, [task.builder(), task.builder()])
    conn.commit()
    fetched = {j.id: j for j in fetch(conn, limit=2)}
    conn.commit()
    complete(conn, fetched[first], retain_for=timedelta(days=400))
    conn.commit()
    # another kept job lands in the default partition, its transaction still open
    complete(conn, fetched[second], retain_for=timedelta(days=400))
    assert _holder(db, first) == "mq_history_default"
    db.commit()
    # the day of the first cannot be moved out now: the upkeep neither waits nor fails
    assert db.execute("SELECT mq_history_rotate()").fetchone() == (0,)
    db.commit()
    assert _holder(db, first) == "mq_history_default"
    conn.commit()
    db.execute("SELECT mq_history_rotate()")
    db.commit()
    day = _holder(db, first)
    assert day is not None
    assert day.startswith("mq_history_p")
    assert _holder(db, second) == day


def _waiting_on_advisory(db: psycopg.Connection[Any]) -> bool:
    row = db.execute(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE wait_event_type = 'Lock' AND wait_event = 'advisory'"
    ).fetchone()
    db.commit()
    return row is not None and row[0] > 0


async def test_an_insert_under_way_while_a_day_is_made_is_not_routed_by_stale_partitions(
    dsn: str, db: psycopg.Connection[Any]
) -> None:
    """A history insert whose statement began before the upkeep made a day's partition, and
    routes its row after: the upkeep must not make the partition under it (the row would go to
    the default partition by the old routing and break its new constraint). Found as
    completions failing with CheckViolation while a runner's upkeep moved a day out of the
    default partition."""
    far = _today(db) + timedelta(days=300)
    started = threading.Event()
    outcome: list[BaseException | None] = []

    def insert() -> None:
        try:
            with psycopg.connect(dsn, autocommit=True) as c:
                started.set()
                # the statement begins (its routing is set up), then waits for the test's
                # signal before it produces its row
                c.execute(
                    "INSERT INTO mq_history (id, name, channel_name, channel_args, state,"
                    " attempts, max_attempts, priority, created_at, expires_at)"
                    " SELECT gen_random_uuid(), 'x', '', '', 'completed', 1, 1, 0, now(), %s"
                    " FROM (SELECT pg_advisory_lock_shared(4242)) AS wait",
                    (datetime.combine(far, time(12), tzinfo=UTC),),
                )
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    with psycopg.connect(dsn, autocommit=True) as gate:
        gate.execute("SELECT pg_advisory_lock(4242)")
        writer = threading.Thread(target=insert)
        writer.start()
        assert started.wait(10)
        await wait_until(lambda: _waiting_on_advisory(db))
        # a row of that day already sits in the default partition: the upkeep would move it
        # out and attach the day now
        db.execute(
            "INSERT INTO mq_history (id, name, channel_name, channel_args, state, attempts,"
            " max_attempts, priority, created_at, expires_at)"
            " VALUES (gen_random_uuid(), 'y', '', '', 'completed', 1, 1, 0, now(), %s)",
            (datetime.combine(far, time(1), tzinfo=UTC),),
        )
        db.commit()
        db.execute("SELECT mq_history_rotate()")
        db.commit()
        gate.execute("SELECT pg_advisory_unlock(4242)")
        writer.join(10)
    assert outcome == [None]
    db.execute("SELECT mq_history_rotate()")
    db.commit()
    rows = db.execute(
        "SELECT tableoid::regclass::text FROM mq_history WHERE expires_at::date = %s", (far,)
    ).fetchall()
    assert [r[0] for r in rows] == [_day_name(far)] * 2
