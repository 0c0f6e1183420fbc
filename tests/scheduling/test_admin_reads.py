"""Admin reads on big queues: list_jobs pages every job exactly once, newest first, under every
filter, from an index (EXPLAIN on 50,000 jobs); queue_counts(exact=False) labels its estimates.

Timings are never asserted here: ``benchmarks/admin_reads.py`` measures them.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql

from sqlxmq_py import JobBuilder, JobState, admin, spawn_many
from sqlxmq_py.admin import JobStatus, cancel, list_jobs, list_statement, queue_counts
from sqlxmq_py.admin import _counts as admin_counts  # where queue_counts reads its caps
from sqlxmq_py.pull import complete, fail, fetch
from sqlxmq_py.sql import query

STATES: tuple[JobState, ...] = tuple(JobState)
CHANNELS = ("a", "b", "")
NAMES = ("x", "y")


def _queue(db: psycopg.Connection[Any]) -> list[JobStatus]:
    """Jobs in every state, over three channels (the default one too), two names and a few
    keys; returns every job as list_jobs reports it, newest first."""
    builders = [
        JobBuilder(NAMES[i % 2]).set_channel_name(CHANNELS[i % 3]).set_json(i) for i in range(18)
    ]
    for i in (2, 7, 11):
        builders[i].set_job_key(f"k{i % 2}-{i}")
    spawn_many(db, builders)  # ready
    spawn_many(db, [JobBuilder("x").set_channel_name(c).set_delay(3600) for c in CHANNELS])
    for channel in ("aw", "w"):  # a retrying and a failed job in each
        spawn_many(
            db,
            [
                JobBuilder("y").set_channel_name(channel).set_retries(1),
                JobBuilder("x").set_channel_name(channel).set_retries(0),
            ],
        )
        for item in fetch(db, [channel], limit=2):
            assert fail(db, item, "broken", delay=timedelta(hours=1)) in ("retrying", "failed")
    kept = [
        JobBuilder("x").set_channel_name("k").set_job_key("k1-kept").set_retain_for(3600),
        JobBuilder("y").set_channel_name("k").set_retain_for(3600),
    ]
    spawn_many(db, kept)
    for item in fetch(db, ["k"], limit=2):  # completed (kept)
        complete(db, item, result={"done": True})
    spawn_many(db, [JobBuilder("x").set_channel_name("c").set_lease(600)])
    fetch(db, ["c"], limit=1, lease=600)  # running
    head, blocked = spawn_many(
        db, [JobBuilder("y").set_channel_name("o").set_ordered() for _ in range(2)]
    )
    JobBuilder("x").set_channel_name("a").set_after([head]).spawn(db)  # waiting (continuation)
    JobBuilder("y").set_channel_name("b").set_commit_interval(600).spawn(db)  # uncommitted
    later = JobBuilder("x").set_channel_name("b").set_delay(60).set_job_key("k0-gone").spawn(db)
    cancel(db, [later], "not needed")  # cancelled (kept)
    db.commit()
    everything = list_jobs(db, limit=10_000)
    ids = [
        row[0]
        for row in db.execute(
            "SELECT id FROM mq_jobs UNION ALL SELECT id FROM mq_history ORDER BY id DESC"
        )
    ]
    assert [s.id for s in everything] == ids
    assert {s.state for s in everything} == set(STATES), "a state is missing from the queue"
    assert blocked in ids
    return everything


@pytest.fixture
def queue(conn: psycopg.Connection[Any]) -> tuple[psycopg.Connection[Any], list[JobStatus]]:
    return conn, _queue(conn)


def _pages(conn: psycopg.Connection[Any], limit: int, **filters: Any) -> Iterator[list[JobStatus]]:
    before = None
    while True:
        page = list_jobs(conn, limit=limit, before=before, **filters)
        yield page
        if len(page) < limit:
            return
        before = page[-1].id


def _matches(job: JobStatus, filters: dict[str, Any]) -> bool:
    states = filters.get("states")
    return (
        (states is None or job.state in states)
        and filters.get("channel_name") in (None, job.channel_name)
        and filters.get("name") in (None, job.name)
        and filters.get("job_key") in (None, job.job_key)
    )


FILTERS = st.fixed_dictionaries(
    {},
    optional={
        "states": st.lists(st.sampled_from(STATES), max_size=4, unique=True),
        "channel_name": st.sampled_from([*CHANNELS, "aw", "w", "k", "c", "o", "nowhere"]),
        "name": st.sampled_from([*NAMES, "nobody"]),
        "job_key": st.sampled_from(["k0-2", "k1-7", "k1-11", "k1-kept", "k0-gone", "none"]),
    },
)


@settings(
    max_examples=120,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(filters=FILTERS, limit=st.integers(min_value=1, max_value=7))
def test_paging_returns_every_job_once_newest_first(
    queue: tuple[psycopg.Connection[Any], list[JobStatus]], filters: dict[str, Any], limit: int
) -> None:
    conn, everything = queue
    expected = [job for job in everything if _matches(job, filters)]
    pages = list(_pages(conn, limit, **filters))
    assert all(len(page) <= limit for page in pages)
    assert [job for page in pages for job in page] == expected


def test_every_state_alone_and_together(
    queue: tuple[psycopg.Connection[Any], list[JobStatus]],
) -> None:
    conn, everything = queue
    for state in STATES:
        listed = list_jobs(conn, states=[state], limit=1000)
        assert listed == [job for job in everything if job.state == state], state
        assert listed, state
    assert list_jobs(conn, states=list(STATES), limit=1000) == everything
    assert list_jobs(conn, states=[]) == []


def test_before_bounds(queue: tuple[psycopg.Connection[Any], list[JobStatus]]) -> None:
    conn, everything = queue
    assert list_jobs(conn, before=uuid.UUID(int=0)) == []
    assert list_jobs(conn, before=uuid.UUID(int=2**128 - 1), limit=1000) == everything
    newest = everything[0].id
    after_newest = uuid.UUID(int=newest.int + 1)  # an id no job has
    assert list_jobs(conn, before=after_newest, limit=1000) == everything
    assert list_jobs(conn, before=newest, limit=1000) == everything[1:]


def test_list_jobs_is_never_prepared_on_the_server(
    queue: tuple[psycopg.Connection[Any], list[JobStatus]],
) -> None:
    """A prepared statement may get a generic plan, chosen without the filter's value, which
    can walk a whole primary key for a rare value: list_jobs is planned for each call."""
    conn, _ = queue
    for _ in range(12):
        list_jobs(conn, channel_name="a", states=["ready"])
        list_jobs(conn, name="x")
        queue_counts(conn, exact=False)
    prepared = conn.execute("SELECT statement FROM pg_prepared_statements").fetchall()
    assert not [s for (s,) in prepared if "mq_jobs" in s]


# --- plans at scale ---

FILL = [
    """
INSERT INTO mq_payloads (id, name, payload_json, retry_backoff)
SELECT id, CASE WHEN i %% 997 = 0 THEN 'rare_name' ELSE 'job_' || (i %% 5) END,
    json_build_object('n', i), interval '1 second'
FROM (SELECT i, (lpad(to_hex(1700000000000 + i), 12, '0') || '7000' || '8'
                 || lpad(to_hex(i), 15, '0'))::uuid AS id
      FROM generate_series(1, %(n)s) AS i) AS g
""",
    """
INSERT INTO mq_jobs (id, channel_name, state, attempts, max_attempts, lease_token,
    commit_deadline, attempt_at, job_key)
SELECT g.id,
    CASE WHEN i %% 991 = 0 THEN 'rare' ELSE 'ch' || (i %% 7) END,
    s.state, CASE WHEN s.state = 'f' OR i %% 100 = 7 THEN 1 ELSE 0 END, 5,
    CASE WHEN s.state = 'l' THEN gen_random_uuid() END,
    CASE WHEN s.state = 'u' THEN now() + interval '1 day' END,
    CASE WHEN s.state IN ('s', 'l') THEN now() + interval '1 hour' ELSE now() END,
    CASE WHEN i %% 10 = 0 THEN 'key-' || i END
FROM (SELECT i, (lpad(to_hex(1700000000000 + i), 12, '0') || '7000' || '8'
                 || lpad(to_hex(i), 15, '0'))::uuid AS id
      FROM generate_series(1, %(n)s) AS i) AS g
CROSS JOIN LATERAL (SELECT (CASE
    WHEN i <= 50 THEN 'l' WHEN i %% 100 < 2 THEN 'f' WHEN i %% 100 < 8 THEN 's'
    WHEN i %% 100 = 8 THEN 'w' WHEN i %% 100 = 9 THEN 'u' ELSE 'r' END)::"char" AS state) AS s
""",
    """
INSERT INTO mq_history (id, name, channel_name, channel_args, state, attempts, max_attempts,
    priority, job_key, created_at, expires_at)
SELECT (lpad(to_hex(1700000000000 + i), 12, '0') || '7001' || '8'
        || lpad(to_hex(i), 15, '0'))::uuid,
    'job_' || (i %% 5), 'ch' || (i %% 7), '', CASE WHEN i %% 20 = 0 THEN 'cancelled'
    ELSE 'completed' END, 1, 5, 0, CASE WHEN i %% 10 = 0 THEN 'key-' || i END, now(),
    now() + interval '1 day'
FROM generate_series(1, %(n)s / 10) AS i
""",
]

PLAN_CASES: list[dict[str, Any]] = [
    {},
    {"before": "deep"},
    *({"states": [state]} for state in STATES),
    {"states": ["failed", "cancelled", "running"]},
    {"states": ["failed"], "before": "deep"},
    {"channel_name": "ch3"},
    {"channel_name": "rare"},
    {"channel_name": "nowhere"},
    {"channel_name": "ch3", "before": "deep"},
    {"channel_name": "rare", "states": ["running", "failed", "completed"]},
    {"name": "job_2"},
    {"name": "rare_name"},
    {"name": "rare_name", "states": ["ready"], "channel_name": "ch1"},
    {"job_key": "key-500"},
    {"job_key": "key-500", "states": ["completed"], "channel_name": "ch3", "name": "job_0"},
]
SCANNED = re.compile(r"(Seq|Sample) Scan on (mq_jobs|mq_payloads)\b")
# mq_history's partitions (mq_history_<day>, mq_history_default): the planner reads an empty one
# (it measures the table's current size, whatever the statistics say) rather than its index
HISTORY_SCANNED = re.compile(r"(?:Seq|Sample) Scan on (mq_history\w*)\b")


def _parent_indexes(conn: psycopg.Connection[Any], names: set[str]) -> set[str]:
    """The mq_history index each partition's index (by name) belongs to, and other names."""
    rows = conn.execute(
        "SELECT c.relname, p.relname FROM pg_inherits AS i"
        " JOIN pg_class AS c ON c.oid = i.inhrelid JOIN pg_class AS p ON p.oid = i.inhparent"
        " WHERE c.relname = ANY(%s)",
        (list(names),),
    ).fetchall()
    parents = dict(rows)
    return {parents.get(name, name) for name in names}


def _is_empty(conn: psycopg.Connection[Any], table: str) -> bool:
    row = conn.execute(
        sql.SQL("SELECT NOT EXISTS (SELECT 1 FROM {})").format(sql.Identifier(table))
    ).fetchone()
    return row == (True,)


def _explain(conn: psycopg.Connection[Any], name: str, params: Mapping[str, object]) -> str:
    """The plan list_jobs gets: planned with the call's values, as it is never prepared."""
    with conn.cursor() as cur:
        cur.execute(b"EXPLAIN " + query(name), params, prepare=False)  # type: ignore[arg-type]
        return "\n".join(row[0] for row in cur.fetchall())


@pytest.fixture
def big_queue(db: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    for statement in FILL:
        db.execute(statement.encode(), {"n": 50_000})
    db.execute("VACUUM (ANALYZE) mq_jobs, mq_payloads, mq_history")
    return db


def test_list_jobs_plans_walk_indexes_not_tables(big_queue: psycopg.Connection[Any]) -> None:
    row = big_queue.execute("SELECT id FROM mq_jobs ORDER BY id OFFSET 5000 LIMIT 1").fetchone()
    assert row is not None
    deep = row[0]
    used: set[str] = set()
    for case in PLAN_CASES:
        filters = {**case, "before": deep if case.get("before") else None}
        statement = list_statement(
            filters.get("states"),
            filters.get("channel_name"),
            filters.get("name"),
            filters.get("job_key"),
            50,
            filters["before"],
        )
        assert statement is not None
        plan = _explain(big_queue, *statement)
        assert not SCANNED.search(plan), f"{case}:\n{plan}"
        for partition in HISTORY_SCANNED.findall(plan):
            assert _is_empty(big_queue, partition), f"{case}:\n{plan}"
        used.update(re.findall(r"(?:Index|Index Only) Scan(?: Backward)? using (\w+)", plan))
        used.update(re.findall(r"Bitmap Index Scan on (\w+)", plan))
        # and it answers what the unindexed filter would
        listed = list_jobs(big_queue, limit=50, **filters)
        assert all(_matches(job, filters) for job in listed), case
    used = _parent_indexes(big_queue, used)
    # each filter's own index serves it where it is selective
    for index in (
        "mq_jobs_admin_idx",
        "mq_jobs_leased_idx",
        "mq_payloads_name_idx",
        "mq_jobs_job_key_idx",
        "mq_history_job_key_idx",
    ):
        assert index in used, index


def test_estimated_counts_plan_reads_no_table(big_queue: psycopg.Connection[Any]) -> None:
    params = {
        "cap": admin.ESTIMATE_ABOVE,
        "running_cap": admin.ESTIMATE_RUNNING_ABOVE,
        "sample_rows": admin.ESTIMATE_SAMPLE_ROWS,
    }
    plan = _explain(big_queue, "queue_counts_estimated", params)
    assert not re.search(r"Seq Scan on mq_jobs\b", plan), plan
    assert "Index Only Scan using mq_jobs_admin_idx" in plan, plan
    counts = {(c.channel_name, c.state): c for c in queue_counts(big_queue, exact=False)}
    exact = {(c.channel_name, c.state): c.count for c in queue_counts(big_queue)}
    assert set(counts) == set(exact)
    for key, count in counts.items():
        if count.exact:
            assert count.count == exact[key], key
        else:
            assert count.count > admin.ESTIMATE_ABOVE, key
            assert exact[key] > admin.ESTIMATE_ABOVE, key
            assert 0.5 < count.count / exact[key] < 2, (key, count.count, exact[key])
    assert counts["rare", "ready"].exact
    assert not counts["ch3", "ready"].exact


def test_the_job_lists_channel_filter_reads_no_table(big_queue: psycopg.Connection[Any]) -> None:
    plan = _explain(big_queue, "web_channel_names", {"limit": 500})
    assert not re.search(r"Seq Scan on mq_jobs\b", plan), plan
    rows = big_queue.execute(query("web_channel_names"), {"limit": 500}).fetchall()
    assert [name for (name,) in rows] == sorted(["rare", *(f"ch{i}" for i in range(7))])


# --- estimated counts ---


def _by_key(counts: Sequence[admin.QueueCount]) -> dict[tuple[str, str], admin.QueueCount]:
    return {(c.channel_name, c.state): c for c in counts}


def test_estimated_counts_are_exact_and_labelled_so_on_a_small_queue(
    queue: tuple[psycopg.Connection[Any], list[JobStatus]],
) -> None:
    conn, _ = queue
    estimated = queue_counts(conn, exact=False)
    assert all(c.exact for c in estimated)
    assert estimated == queue_counts(conn)


def test_counts_above_the_cap_are_estimates(
    conn: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    spawn_many(conn, [JobBuilder("x").set_channel_name("big") for _ in range(400)])
    spawn_many(conn, [JobBuilder("x").set_channel_name("small") for _ in range(3)])
    spawn_many(conn, [JobBuilder("x").set_channel_name("run") for _ in range(4)])
    fetch(conn, ["run"], limit=4, lease=600)
    conn.commit()
    conn.execute("ANALYZE mq_jobs")
    monkeypatch.setattr(admin_counts, "ESTIMATE_ABOVE", 50)
    monkeypatch.setattr(admin_counts, "ESTIMATE_RUNNING_ABOVE", 2)
    monkeypatch.setattr(admin_counts, "ESTIMATE_SAMPLE_ROWS", 100)  # a part of the table only
    counts = _by_key(queue_counts(conn, exact=False))
    assert set(counts) == {("big", "ready"), ("small", "ready"), ("run", "running")}
    big = counts["big", "ready"]
    assert not big.exact
    assert big.count > 50  # at least what was counted before the cap
    assert big.oldest_ready_age_s is not None
    assert counts["small", "ready"] == admin.QueueCount(
        channel_name="small",
        state="ready",
        count=3,
        oldest_ready_age_s=counts["small", "ready"].oldest_ready_age_s,
        exact=True,
    )
    assert not counts["run", "running"].exact
    assert counts["run", "running"].count >= 3


def test_estimated_counts_merge_the_two_kinds_of_waiting(conn: psycopg.Connection[Any]) -> None:
    head, _blocked = spawn_many(
        conn, [JobBuilder("x").set_channel_name("c").set_ordered() for _ in range(2)]
    )
    JobBuilder("x").set_channel_name("c").set_after([head]).spawn(conn)
    JobBuilder("x").set_channel_name("d").set_retries(2).spawn(conn)
    conn.commit()
    (item,) = fetch(conn, ["d"], limit=1)
    assert fail(conn, item, "again", delay=timedelta(hours=1)) == "retrying"
    conn.commit()
    counts = _by_key(queue_counts(conn, exact=False))
    assert counts["c", "waiting"].count == 2  # one blocked behind the head, one continuation
    assert counts["c", "waiting"].exact
    assert counts["d", "retrying"].count == 1
    assert counts == _by_key(queue_counts(conn))
