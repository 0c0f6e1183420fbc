"""Rate limits per key, enforced by real runners on real PostgreSQL: the budget, the strict
window, several rules per job, prefix rules, no starvation of other jobs and no busy loop, and
two runners racing on one key."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg
import pytest

from sqlxmq_py import JobRegistry, JobState, spawn_many
from sqlxmq_py.admin import (
    RateWait,
    job_status,
    list_rate_limits,
    remove_rate_limit,
    set_channel_limit,
    set_rate_limit,
)
from sqlxmq_py.pull import fetch
from sqlxmq_py.rate_limit import RateLimit

from ..helpers import (
    PollSignals,
    Runner,
    count_jobs,
    listener_idle,
    maintenance_passed,
    wait_until,
)
from .jobs import STARTS_TABLE, assert_strict, free, limited, started, starts, state_counts

HOUR = timedelta(hours=1)


@pytest.fixture(autouse=True)
def starts_table(db: psycopg.Connection[Any]) -> None:
    db.execute(STARTS_TABLE)


def deferred_until(db: psycopg.Connection[Any]) -> list[Any]:
    return [
        at
        for (at,) in db.execute(
            "SELECT attempt_at FROM mq_jobs WHERE state = 's' ORDER BY attempt_at"
        ).fetchall()
    ]


async def test_a_key_starts_its_budget_and_defers_the_rest_until_the_window_allows(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    set_rate_limit(conn, "global", 3, per=HOUR)
    spawn_many(conn, [limited.builder() for _ in range(5)])
    conn.commit()
    async with runner([limited]):
        await wait_until(lambda: started(db) == 3 and state_counts(db) == {"s": 2})
    at = starts(db)
    # deferred, not retried: the two wait for the first and second start to leave the window
    assert deferred_until(db) == [at[0] + HOUR, at[1] + HOUR]
    assert db.execute("SELECT sum(attempts) FROM mq_jobs").fetchone() == (0,)
    assert list_rate_limits(db) == [RateLimit(key_pattern="global", max_starts=3, period=HOUR)]
    # why it waits: the key, and when the key allows a start again
    deferred_id = db.execute("SELECT id FROM mq_jobs WHERE state = 's' LIMIT 1").fetchone()
    assert deferred_id is not None
    status = job_status(db, deferred_id[0])
    assert status is not None
    assert (status.state, status.rate_keys) == (JobState.SCHEDULED, ("global",))
    assert status.rate_waits == (RateWait(key="global", until=at[0] + HOUR),)
    assert str(status.rate_waits[0]).startswith("waits for rate key global until ")


async def test_the_window_is_strict_the_next_start_waits_for_the_oldest_to_leave(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    period = timedelta(seconds=1)
    set_rate_limit(conn, "global", 2, per=period)
    spawn_many(conn, [limited.builder() for _ in range(7)])
    conn.commit()
    async with runner([limited]):
        await wait_until(lambda: started(db) == 7, timeout=20)
    at = starts(db)
    assert_strict(at, 2, period)
    # not a fixed window either: the third start is a period after the first, not at a boundary
    assert at[2] - at[0] >= period


async def test_several_rules_per_job_all_must_allow_and_each_counts_the_start(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    set_rate_limit(conn, "global", 4, per=HOUR)  # a global API cap
    set_rate_limit(conn, "customer:*", 2, per=HOUR)  # and one per customer
    for customer in ("a", "b", "c"):
        builders = [limited.builder().add_rate_key(f"customer:{customer}") for _ in range(3)]
        spawn_many(conn, builders)
    conn.commit()
    async with runner([limited]):
        await wait_until(lambda: started(db) == 4 and state_counts(db) == {"s": 5})
    per_customer = {c: len(starts(db, f"customer:{c}")) for c in ("a", "b", "c")}
    assert sum(per_customer.values()) == 4
    assert max(per_customer.values()) <= 2
    windows = dict(
        db.execute("SELECT rate_key, cardinality(starts) FROM mq_rate_windows").fetchall()
    )
    assert windows["global"] == 4
    assert {k: n for k, n in windows.items() if k != "global" and n} == {
        f"customer:{c}": n for c, n in per_customer.items() if n
    }


async def test_a_prefix_rule_gives_each_key_its_own_budget(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    set_rate_limit(conn, "customer:*", 1, per=HOUR)
    set_rate_limit(conn, "customer:vip:*", 3, per=HOUR)  # the longest prefix wins
    for key in ("customer:a", "customer:b", "customer:vip:x"):
        spawn_many(conn, [limited.builder().set_rate_keys([key]) for _ in range(4)])
    conn.commit()
    async with runner([limited]):
        await wait_until(lambda: started(db) == 5 and state_counts(db) == {"s": 7})
    assert [len(starts(db, k)) for k in ("customer:a", "customer:b", "customer:vip:x")] == [
        1,
        1,
        3,
    ]


async def test_unlimited_jobs_run_while_a_key_is_exhausted_and_nothing_polls_in_a_loop(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    set_rate_limit(conn, "global", 1, per=HOUR)
    # the limited jobs first: they are at the head of the queue when the runner starts
    spawn_many(conn, [limited.builder() for _ in range(200)])
    spawn_many(conn, [free.builder().set_channel_name("other") for _ in range(100)])
    conn.commit()
    signals = PollSignals()
    async with runner([limited, free], hooks=[signals], poll_interval=0.5):
        await wait_until(lambda: started(db) == 101 and state_counts(db) == {"s": 199})
        polls = len(signals.polls)
        # 101 starts at concurrency (4, 8) and 199 deferrals, 10 per lease at most: a few
        # dozen leases, not a loop re-examining the exhausted key
        assert polls < 100, signals.polls
        await maintenance_passed(db)
        await signals.polls_after_now(2)
        # idle now: it polls at its poll interval (or when told of news), never in a loop
        before = len(signals.polls)
        await maintenance_passed(db)
        assert len(signals.polls) - before < 10
    assert len(starts(db, "global")) == 1


async def test_deferred_jobs_start_once_the_window_allows_without_a_spawn_to_wake_them(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    period = timedelta(milliseconds=500)
    set_rate_limit(conn, "global", 1, per=period)
    spawn_many(conn, [limited.builder() for _ in range(4)])
    conn.commit()
    # a long poll interval: only the promotion of the deferred jobs can start them in time
    async with runner([limited], poll_interval=30):
        await wait_until(lambda: started(db) == 4, timeout=20)
    assert_strict(starts(db), 1, period)


async def test_two_runners_racing_on_one_key_never_exceed_it(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    period = timedelta(milliseconds=500)
    set_rate_limit(conn, "global", 3, per=period)
    spawn_many(conn, [limited.builder() for _ in range(24)])
    conn.commit()
    async with runner([limited], concurrency=(8, 16)), runner([limited], concurrency=(8, 16)):
        await wait_until(lambda: started(db) == 24, timeout=30)
    assert_strict(starts(db), 3, period)
    assert count_jobs(db) == 0


async def test_a_key_without_a_rule_is_not_limited_and_a_removed_rule_stops_limiting(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    set_rate_limit(conn, "global", 1, per=HOUR)
    assert remove_rate_limit(conn, "global") is True
    assert remove_rate_limit(conn, "global") is False
    spawn_many(conn, [limited.builder().add_rate_key("no-rule") for _ in range(5)])
    conn.commit()
    async with runner([limited]):
        await wait_until(lambda: started(db) == 5)


async def test_a_registry_writes_its_rules_when_its_runner_starts(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    set_rate_limit(conn, "global", 100, per=1)
    conn.commit()
    registry = JobRegistry([limited]).add_rate_limit("global", 2, per=HOUR)
    spawn_many(conn, [limited.builder() for _ in range(3)])
    conn.commit()
    async with runner(registry):
        await wait_until(lambda: started(db) == 2 and state_counts(db) == {"s": 1})
    assert list_rate_limits(db) == [RateLimit(key_pattern="global", max_starts=2, period=HOUR)]


async def test_idle_windows_are_dropped_by_maintenance(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    set_rate_limit(conn, "customer:*", 5, per=timedelta(milliseconds=100))
    spawn_many(conn, [limited.builder().add_rate_key(f"customer:{i}") for i in range(50)])
    conn.commit()
    async with runner([limited]):
        await wait_until(lambda: started(db) == 50)
        await wait_until(
            lambda: db.execute("SELECT count(*) FROM mq_rate_windows").fetchone() == (0,)
        )


async def test_a_channel_with_a_concurrency_limit_defers_as_the_others_do(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    set_channel_limit(conn, "capped", 5)
    set_rate_limit(conn, "global", 2, per=HOUR)
    spawn_many(conn, [limited.builder().set_channel_name("capped") for _ in range(6)])
    conn.commit()
    async with runner([limited]):
        await wait_until(lambda: started(db) == 2 and state_counts(db) == {"s": 4})


def test_the_pull_api_leases_and_defers_returning_only_what_it_leased(
    conn: psycopg.Connection[Any],
) -> None:
    set_rate_limit(conn, "global", 2, per=HOUR)
    ids = spawn_many(conn, [limited.builder() for _ in range(3)])
    free_id = free.builder().spawn(conn)
    conn.commit()
    fetched = fetch(conn, None, limit=10)
    conn.commit()
    assert len(fetched) == 3
    assert free_id in {f.id for f in fetched}
    assert state_counts(conn) == {"l": 3, "s": 1}
    assert fetch(conn, None, limit=10) == []
    assert {f.id for f in fetched} - {free_id} < set(ids)


async def test_a_lease_that_deferred_its_batch_leases_again_at_once(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    set_rate_limit(conn, "global", 1, per=HOUR)
    conn.commit()
    signals = PollSignals()
    # a poll interval longer than the test's patience: the runner must not take a lease that
    # deferred most of its batch for an empty queue (it counts the deferred jobs as looked at,
    # and an idle runner also hears the deferral's wake-up), or the free jobs behind the
    # limited ones would wait for the next poll
    async with runner([limited, free], hooks=[signals], poll_interval=60):
        await wait_until(lambda: listener_idle(db))
        # one group: every limited job ahead of the free ones, by priority
        spawn_many(conn, [limited.builder().set_priority(1) for _ in range(40)])
        spawn_many(conn, [free.builder() for _ in range(10)])
        conn.commit()
        await wait_until(lambda: started(db) == 11 and state_counts(db) == {"s": 39})


def test_a_longer_period_keeps_the_windows_it_now_needs(conn: psycopg.Connection[Any]) -> None:
    set_rate_limit(conn, "customer:*", 1, per=timedelta(milliseconds=1))
    ids = spawn_many(conn, [limited.builder().add_rate_key(f"customer:{c}") for c in "ab"])
    conn.commit()
    assert len(fetch(conn, None, limit=2)) == 2
    conn.commit()
    set_rate_limit(conn, "customer:*", 1, per=HOUR)
    conn.commit()
    rows = conn.execute("SELECT idle_at - starts[1] FROM mq_rate_windows").fetchall()
    assert rows == [(HOUR,), (HOUR,)]
    assert len(ids) == 2
