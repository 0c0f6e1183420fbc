"""mq_spawn(rate_keys => ...) (migration 0015): a job spawned in SQL carries rate keys, checked
as the Python spawn checks them, and is deferred like any keyed job; every existing call of
mq_spawn works as before, also for a role with only mq_grant_usage."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg
import pytest

from sqlxmq_py import BlockingCurrentJob, JobRegistry, job
from sqlxmq_py.admin import set_rate_limit
from sqlxmq_py.pull import fetch
from sqlxmq_py.testing import run_pending

from ..test_least_privilege import app_dsn  # noqa: F401  # the fixture
from .jobs import state_counts


def keys_of(db: psycopg.Connection[Any], job_id: Any) -> Any:
    ((keys,),) = db.execute("SELECT rate_keys FROM mq_jobs WHERE id = %s", (job_id,)).fetchall()
    return keys


def test_keys_are_stored_distinct_and_sorted_and_none_is_null(db: psycopg.Connection[Any]) -> None:
    ((keyed,),) = db.execute("SELECT mq_spawn('x', rate_keys => ARRAY['b', 'a', 'b'])").fetchall()
    assert keys_of(db, keyed) == ["a", "b"]
    ((empty,),) = db.execute("SELECT mq_spawn('x', rate_keys => '{}')").fetchall()
    assert keys_of(db, empty) is None
    # the calls of before: positional, named, and the failure path's own
    ((old,),) = db.execute("SELECT mq_spawn('x', '{\"a\": 1}', 'chan')").fetchall()
    ((named,),) = db.execute(
        "SELECT mq_spawn('x', channel_name => 'c', priority => 3, headers => '{}')"
    ).fetchall()
    assert keys_of(db, old) is None
    assert keys_of(db, named) is None


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ("ARRAY['']", "non-empty"),
        ("ARRAY[NULL::text]", "non-empty"),
        ("ARRAY['customer:*']", "may not hold '*'"),
        ("ARRAY[repeat('k', 201)]", "at most 200 bytes"),
        ("ARRAY(SELECT 'k' || i FROM generate_series(1, 17) AS i)", "at most 16 rate keys"),
    ],
)
def test_bad_keys_are_refused_saying_what_is_wrong(
    db: psycopg.Connection[Any], keys: str, message: str
) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=message):
        db.execute(f"SELECT mq_spawn('x', rate_keys => {keys})")  # type: ignore[arg-type]
    assert db.execute("SELECT count(*) FROM mq_jobs").fetchone() == (0,)


def test_jobs_spawned_in_sql_with_a_key_are_deferred_like_any_keyed_job(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    set_rate_limit(conn, "smtp", 1, per=timedelta(hours=1))
    for _ in range(3):
        conn.execute("SELECT mq_spawn('mail', rate_keys => ARRAY['smtp'])")
    conn.execute("SELECT mq_spawn('mail')")
    conn.commit()
    assert len(fetch(conn, None, limit=10)) == 2  # one keyed, and the one without a key
    conn.commit()
    assert state_counts(db) == {"l": 2, "s": 2}


def test_a_role_with_only_the_granted_privileges_spawns_keyed_jobs(app_dsn: str) -> None:  # noqa: F811
    with psycopg.connect(app_dsn, autocommit=True) as app:
        ((job_id,),) = app.execute("SELECT mq_spawn('x', rate_keys => ARRAY['k'])").fetchall()
        assert keys_of(app, job_id) == ["k"]


@job(name="ratelimits.sql_failing", retries=0, dead_letter="ratelimits.dead")
def failing(current_job: BlockingCurrentJob) -> None:
    raise RuntimeError("no")


@job(name="ratelimits.dead", rate_keys=["dead-letters"])
def dead(current_job: BlockingCurrentJob) -> None:
    pass


def test_a_dead_letter_job_carries_no_keys_its_definition_is_not_known_in_sql(
    conn: psycopg.Connection[Any],
) -> None:
    # the documented gap: the failure trigger spawns it by name, and only Python knows that
    # @job(rate_keys) of ratelimits.dead says ["dead-letters"]
    failing.builder().spawn(conn)
    run_pending(conn, JobRegistry([failing]))
    ((keys,),) = conn.execute(
        "SELECT j.rate_keys FROM mq_jobs AS j JOIN mq_payloads AS p ON p.id = j.id "
        "WHERE p.name = 'ratelimits.dead'"
    ).fetchall()
    assert keys is None
    conn.rollback()
