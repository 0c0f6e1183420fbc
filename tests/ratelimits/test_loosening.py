"""A rule loosened or removed re-judges the jobs it deferred (migration 0015, mq_rate_change):
they become due now and the next lease admits or defers them under the rule as it is; a job
scheduled for later by its spawner is never brought forward, a tightened rule wakes nothing, and
a rule removed or loosened while a lease defers, or just before a lease that read it, leaves no
job stuck."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import psycopg

from sqlxmq_py import spawn_many
from sqlxmq_py.admin import remove_rate_limit, set_rate_limit
from sqlxmq_py.pull import FetchedJob, fetch

from ..helpers import wait_until
from .jobs import limited, state_counts

HOUR = timedelta(hours=1)


def lease_all(conn: psycopg.Connection[Any]) -> list[FetchedJob]:
    jobs = fetch(conn, None, limit=50)
    conn.commit()
    return jobs


def waiting_for_lock(db: psycopg.Connection[Any], function: str) -> bool:
    """Whether exactly one session runs a statement calling ``function`` and waits for a lock."""
    row = db.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE %s",
        (f"%{function}%",),
    ).fetchone()
    return row == (1,)


def due_count(db: psycopg.Connection[Any]) -> int:
    ((n,),) = db.execute(
        "SELECT count(*) FROM mq_jobs WHERE state = 's' AND attempt_at <= now()"
    ).fetchall()
    return int(n)


async def test_a_higher_budget_wakes_the_deferred_jobs_but_not_a_job_scheduled_for_later(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    set_rate_limit(conn, "global", 1, per=HOUR)
    spawn_many(conn, [limited.builder() for _ in range(3)])
    later = limited.builder().set_delay(2 * 3600).spawn(conn)  # its spawner's own instant
    conn.commit()
    assert len(lease_all(conn)) == 1
    assert state_counts(db) == {"l": 1, "s": 3}
    assert due_count(db) == 0
    (before,) = db.execute("SELECT attempt_at FROM mq_jobs WHERE id = %s", (later,)).fetchone()

    set_rate_limit(conn, "global", 10, per=HOUR)
    conn.commit()

    assert due_count(db) == 2  # the two deferred ones, now
    assert db.execute("SELECT attempt_at FROM mq_jobs WHERE id = %s", (later,)).fetchone() == (
        before,
    )
    db.execute("SELECT mq_promote(NULL, false)")
    assert len(lease_all(conn)) == 2
    assert state_counts(db) == {"l": 3, "s": 1}


async def test_a_shorter_period_wakes_them_and_the_lease_defers_them_again_if_still_spent(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    set_rate_limit(conn, "global", 1, per=HOUR)
    spawn_many(conn, [limited.builder() for _ in range(3)])
    conn.commit()
    assert len(lease_all(conn)) == 1
    set_rate_limit(conn, "global", 1, per=timedelta(minutes=30))
    conn.commit()
    assert due_count(db) == 2
    db.execute("SELECT mq_promote(NULL, false)")
    # still one start in the last 30 minutes: judged again, and deferred under the new period
    assert lease_all(conn) == []
    ((start,),) = db.execute("SELECT starts[1] FROM mq_rate_windows").fetchall()
    untils = [u for (u,) in db.execute("SELECT attempt_at FROM mq_jobs WHERE state = 's'")]
    assert len(untils) == 2
    assert min(untils) == start + timedelta(minutes=30)
    # and a second loosening finds them again by their new instants
    remove_rate_limit(conn, "global")
    conn.commit()
    assert due_count(db) == 2


async def test_a_tightened_or_unchanged_rule_wakes_nothing(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    set_rate_limit(conn, "global", 2, per=HOUR)
    spawn_many(conn, [limited.builder() for _ in range(4)])
    conn.commit()
    assert len(lease_all(conn)) == 2
    untils = sorted(u for (u,) in db.execute("SELECT attempt_at FROM mq_jobs WHERE state = 's'"))
    set_rate_limit(conn, "global", 2, per=HOUR)  # as every runner start writes it
    set_rate_limit(conn, "global", 1, per=2 * HOUR)
    conn.commit()
    assert due_count(db) == 0
    assert sorted(u for (u,) in db.execute("SELECT attempt_at FROM mq_jobs WHERE state = 's'")) == (
        untils
    )


async def test_a_removed_rule_wakes_its_jobs_and_drops_its_windows(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    set_rate_limit(conn, "global", 1, per=HOUR)
    spawn_many(conn, [limited.builder() for _ in range(3)])
    conn.commit()
    assert len(lease_all(conn)) == 1
    assert remove_rate_limit(conn, "global") is True
    conn.commit()
    assert due_count(db) == 2
    assert db.execute("SELECT count(*) FROM mq_rate_windows").fetchone() == (0,)
    assert remove_rate_limit(conn, "global") is False
    db.execute("SELECT mq_promote(NULL, false)")
    assert len(lease_all(conn)) == 2


async def test_a_prefix_rule_overridden_for_one_key_wakes_only_that_keys_jobs(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    set_rate_limit(conn, "customer:*", 1, per=HOUR)
    spawn_many(
        conn,
        [
            limited.builder().set_rate_keys([f"customer:{who}"])
            for who in ("acme", "acme", "bolt", "bolt")
        ],
    )
    conn.commit()
    assert len(lease_all(conn)) == 2
    set_rate_limit(conn, "customer:acme", 5, per=HOUR)
    conn.commit()
    woken = db.execute(
        "SELECT rate_keys, attempt_at <= now() FROM mq_jobs WHERE state = 's' ORDER BY 1"
    ).fetchall()
    assert woken == [(["customer:acme"], True), (["customer:bolt"], False)]
    # and removing the exact rule hands acme back to the prefix rule: its window is kept
    remove_rate_limit(conn, "customer:acme")
    conn.commit()
    assert db.execute("SELECT rate_key FROM mq_rate_windows ORDER BY 1").fetchall() == [
        ("customer:acme",),
        ("customer:bolt",),
    ]


async def test_a_rule_removed_while_a_lease_defers_waits_for_it_and_wakes_its_deferrals(
    dsn: str, conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    set_rate_limit(conn, "global", 1, per=HOUR)
    spawn_many(conn, [limited.builder() for _ in range(3)])
    conn.commit()
    # a lease that deferred two jobs, not committed yet: it holds the window
    assert len(fetch(conn, None, limit=10)) == 1

    def remove() -> bool:
        with psycopg.connect(dsn, autocommit=True) as admin:
            return remove_rate_limit(admin, "global")

    removing = asyncio.create_task(asyncio.to_thread(remove))
    await wait_until(lambda: waiting_for_lock(db, "mq_rate_change"))
    conn.commit()
    assert await removing is True
    assert due_count(db) == 2  # the lease's deferrals, seen once it committed


async def test_a_lease_that_read_a_rule_just_removed_admits_rather_than_defers(
    dsn: str, conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    set_rate_limit(conn, "global", 1, per=HOUR)
    spawn_many(conn, [limited.builder() for _ in range(2)])
    conn.commit()
    assert len(lease_all(conn)) == 1
    assert due_count(db) == 0
    db.execute("UPDATE mq_jobs SET state = 'r', attempt_at = now() WHERE state = 's'")
    # the removal holds the window, uncommitted: a lease now still reads the rule
    assert remove_rate_limit(conn, "global") is True

    def lease() -> list[FetchedJob]:
        with psycopg.connect(dsn, autocommit=True) as leaser:
            return fetch(leaser, None, limit=10)

    leasing = asyncio.create_task(asyncio.to_thread(lease))
    await wait_until(lambda: waiting_for_lock(db, "mq_lease"))
    conn.commit()
    leased = await leasing
    assert len(leased) == 1  # its window was dropped: no start to count against it
    assert state_counts(db) == {"l": 2}


async def test_a_lease_that_read_a_rule_just_loosened_judges_by_the_looser_rule(
    dsn: str, conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    """The lease reads the old rule (1 an hour) while the loosening (3 an hour) holds the
    key's window; it waits there, and once it has the window it must judge by the rule as it
    is then: by the one it read, it would defer the job for an hour, a job the loosening
    could not wake (it was not deferred yet)."""
    set_rate_limit(conn, "global", 1, per=HOUR)
    spawn_many(conn, [limited.builder() for _ in range(2)])
    conn.commit()
    assert len(lease_all(conn)) == 1  # the first start is in the window; the second deferred
    db.execute("UPDATE mq_jobs SET state = 'r', attempt_at = now() WHERE state = 's'")
    set_rate_limit(conn, "global", 3, per=HOUR)  # holds the window, not committed

    def lease() -> list[FetchedJob]:
        with psycopg.connect(dsn, autocommit=True) as leaser:
            return fetch(leaser, None, limit=10)

    leasing = asyncio.create_task(asyncio.to_thread(lease))
    await wait_until(lambda: waiting_for_lock(db, "mq_lease"))
    conn.commit()
    leased = await leasing
    assert len(leased) == 1  # the second start of three allowed
    assert state_counts(db) == {"l": 2}


async def test_a_prefix_rule_loosened_while_a_lease_makes_a_new_keys_window_wakes_its_deferral(
    dsn: str, conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    """The lease makes the first window of ``customer:new`` (a row the change cannot see, let
    alone lock) and defers the key's second job by the prefix rule; the change of the prefix
    rule must still wait for that lease, and then wake the job it deferred."""
    set_rate_limit(conn, "customer:*", 1, per=HOUR)
    spawn_many(conn, [limited.builder().add_rate_key("customer:new") for _ in range(2)])
    conn.commit()
    assert len(fetch(conn, None, limit=10)) == 1  # one start, one deferral: not committed

    def loosen() -> None:
        with psycopg.connect(dsn, autocommit=True) as admin:
            set_rate_limit(admin, "customer:*", 3, per=HOUR)

    loosening = asyncio.create_task(asyncio.to_thread(loosen))
    await wait_until(lambda: loosening.done() or waiting_for_lock(db, "mq_rate_change"))
    conn.commit()
    await loosening
    assert due_count(db) == 1  # the lease's deferral, woken by the looser rule


async def test_two_changes_of_one_rule_racing_queue_up_and_both_hold(
    dsn: str, conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    set_rate_limit(conn, "customer:*", 1, per=HOUR)
    spawn_many(conn, [limited.builder().add_rate_key("customer:acme") for _ in range(3)])
    conn.commit()
    assert len(lease_all(conn)) == 1
    set_rate_limit(conn, "customer:*", 2, per=HOUR)  # holds the windows, not committed

    def tighten() -> None:
        with psycopg.connect(dsn, autocommit=True) as admin:
            set_rate_limit(admin, "customer:*", 1, per=2 * HOUR)

    racing = asyncio.create_task(asyncio.to_thread(tighten))
    await wait_until(lambda: waiting_for_lock(db, "mq_rate_change"))
    conn.commit()
    await racing
    # the loosening woke both deferred jobs; the tightening after it found none to move back
    assert due_count(db) == 2
    assert db.execute("SELECT max_starts, period FROM mq_rate_limits").fetchall() == [(1, 2 * HOUR)]
    db.execute("SELECT mq_promote(NULL, false)")
    assert lease_all(conn) == []  # judged again under the rule that holds now
    assert state_counts(db) == {"l": 1, "s": 2}
