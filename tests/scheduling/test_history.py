"""History and retention: finished kept jobs leave the hot table for mq_history; purge removes
what expired (the runner's maintenance drops whole days: test_history_partitions.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from sqlxmq_py import ConfigurationError, CurrentJob, job, spawn_many
from sqlxmq_py.admin import PurgeResult, purge
from sqlxmq_py.pull import complete, fail, fetch

from ..helpers import Runner, count_jobs, payload_count, wait_until
from ._util import db_now, history_count, history_row


async def test_the_hot_table_holds_only_unfinished_jobs(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    @job(retain_for=timedelta(hours=1))
    async def kept(current_job: CurrentJob) -> int:
        return int(current_job.json())

    done_ids = spawn_many(conn, [kept.builder().set_json(i) for i in range(200)])
    later_ids = spawn_many(
        conn, [kept.builder().set_json(i).set_delay(timedelta(hours=1)) for i in range(7)]
    )
    conn.commit()
    async with runner([kept], concurrency=(16, 32)):
        await wait_until(lambda: history_count(db) == len(done_ids), timeout=30)
        assert count_jobs(db) == len(later_ids)
    assert count_jobs(db) == len(later_ids) == payload_count(db)
    rows = db.execute("SELECT id, result::text FROM mq_history ORDER BY id").fetchall()
    assert [row[0] for row in rows] == sorted(done_ids)
    assert sorted(int(row[1]) for row in rows) == list(range(200))

    purged = purge(db, history_before=timedelta(0))
    assert purged == PurgeResult(failed=0, history=len(done_ids))
    assert history_count(db) == 0
    assert count_jobs(db) == len(later_ids)  # unfinished jobs are never purged


async def test_purge_removes_history_older_than_the_cutoff_and_expired_history(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    @job
    async def task(current_job: CurrentJob) -> None:
        pass

    old, new, expiring = spawn_many(conn, [task.builder(), task.builder(), task.builder()])
    conn.commit()
    fetched = {j.id: j for j in fetch(conn, limit=3)}
    complete(conn, fetched[old], retain_for=timedelta(days=30))
    complete(conn, fetched[new], retain_for=timedelta(days=30))
    complete(conn, fetched[expiring], retain_for=timedelta(milliseconds=1))
    conn.commit()
    expiring_row = history_row(db, expiring)
    assert expiring_row is not None
    expiry = expiring_row["expires_at"]
    await wait_until(lambda: db_now(db) > expiry)  # a millisecond
    db.execute(
        "UPDATE mq_history SET finished_at = now() - interval '3 days' WHERE id = %s", (old,)
    )
    # nothing finished before the cutoff; the expired row goes anyway
    assert purge(db) == PurgeResult(failed=0, history=1)
    assert history_row(db, expiring) is None
    assert purge(db, history_before=timedelta(days=7)) == PurgeResult(failed=0, history=0)
    assert purge(db, history_before=timedelta(days=1)) == PurgeResult(failed=0, history=1)
    assert history_row(db, old) is None
    assert history_row(db, new) is not None
    cutoff = db_now(db) + timedelta(seconds=1)
    assert purge(db, history_before=cutoff) == PurgeResult(failed=0, history=1)
    assert history_count(db) == 0


def test_purge_removes_old_failed_jobs(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    @job(retries=0)
    async def doomed(current_job: CurrentJob) -> None:
        pass

    first, _second, waiting = spawn_many(
        conn, [doomed.builder(), doomed.builder(), doomed.builder().set_delay(3600)]
    )
    conn.commit()
    for item in fetch(conn, limit=2):
        assert fail(conn, item, "broken") == "failed"
    conn.commit()
    db.execute("UPDATE mq_jobs SET attempt_at = now() - interval '2 days' WHERE id = %s", (first,))
    assert purge(db) == PurgeResult(failed=0, history=0)  # no cutoff: failed jobs stay
    assert purge(db, failed_before=timedelta(days=3)) == PurgeResult(failed=0, history=0)
    assert purge(db, failed_before=timedelta(days=1)) == PurgeResult(failed=1, history=0)
    assert count_jobs(db, "state = 'f'") == 1
    cutoff = db_now(db) + timedelta(seconds=1)
    assert purge(db, failed_before=cutoff) == PurgeResult(failed=1, history=0)
    assert count_jobs(db) == 1  # the waiting job
    assert payload_count(db) == 1
    assert count_jobs(db, f"id = '{waiting}'") == 1


async def test_purge_with_an_async_connection(
    aconn: psycopg.AsyncConnection[Any], db: psycopg.Connection[Any]
) -> None:
    result = await purge(aconn, failed_before=timedelta(0), history_before=timedelta(0))
    assert result == PurgeResult(failed=0, history=0)


def test_purge_refuses_naive_cutoffs(db: psycopg.Connection[Any]) -> None:
    with pytest.raises(ConfigurationError, match="failed_before"):
        purge(db, failed_before=datetime(2026, 1, 1))
    with pytest.raises(ConfigurationError, match="history_before"):
        purge(db, history_before=datetime(2026, 1, 1))
    assert purge(db, history_before=datetime(2026, 1, 1, tzinfo=UTC)).history == 0
