"""The bulk statements walk an index for the common filters (state, channel, name, key), with
50,000 queued and 5,000 kept jobs: no table is read whole, and each filter's own index serves
it. And the walks, merged across labels, channels and partitions in small batches, take
exactly the jobs the filter matches."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any

import psycopg
import pytest
from psycopg import sql

from sqlxmq_py.admin import JobFilter, cancel_matching, count_matching, delete_matching
from sqlxmq_py.admin._job_filter import filter_params
from sqlxmq_py.sql import query

from .test_admin_reads import FILL

SCANNED = re.compile(r"(?:Seq|Sample) Scan on (mq_jobs|mq_payloads|mq_history\w*)\b")
USED = re.compile(r"(?:(?:Index|Index Only) Scan(?: Backward)? using|Bitmap Index Scan on) (\w+)")

CASES: list[tuple[str, dict[str, Any], str]] = [
    ("retry", {"states": ["failed"]}, "mq_jobs_admin_idx"),
    ("cancel", {"states": ["scheduled", "ready"]}, "mq_jobs_admin_idx"),
    ("run_now", {"states": ["scheduled"], "error": "boom"}, "mq_jobs_admin_idx"),
    ("cancel", {"channel_name": "rare"}, "mq_jobs_admin_idx"),
    ("retry", {"channel_name": "ch3", "states": ["failed"]}, "mq_jobs_admin_idx"),
    ("cancel", {"name": "rare_name"}, "mq_payloads_name_idx"),
    ("retry", {"name": "job_2", "channel_name": "ch1"}, "mq_payloads_name_idx"),
    ("delete", {"job_key": "key-500"}, "mq_jobs_job_key_idx"),
    ("delete", {"states": ["failed", "completed"]}, "mq_jobs_admin_idx"),
]
BROAD = [{"states": ["failed", "completed"]}]
"""Filters that match most kept jobs: counting them may read the history's tables whole."""
HISTORY_INDEXES = {
    "key": "mq_history_job_key_idx",
    "name": "mq_history_name_idx",
    "channel": "mq_history_channel_idx",
    "state": "mq_history_state_idx",
}


@pytest.fixture
def big_queue(db: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    for statement in FILL:
        db.execute(statement.encode(), {"n": 50_000})
    db.execute("VACUUM (ANALYZE) mq_jobs, mq_payloads, mq_history")
    return db


def _plan(db: psycopg.Connection[Any], name: str, params: Mapping[str, object]) -> str:
    with db.cursor() as cur:
        cur.execute(b"EXPLAIN " + query(name), params, prepare=False)  # type: ignore[arg-type]
        return "\n".join(row[0] for row in cur.fetchall())


def _indexes(db: psycopg.Connection[Any], plan: str) -> set[str]:
    """The indexes the plan walks, a partition's index named by its mq_history index."""
    names = set(USED.findall(plan))
    rows = db.execute(
        "SELECT c.relname, p.relname FROM pg_inherits AS i"
        " JOIN pg_class AS c ON c.oid = i.inhrelid JOIN pg_class AS p ON p.oid = i.inhparent"
        " WHERE c.relname = ANY(%s)",
        (list(names),),
    ).fetchall()
    parents = dict(rows)
    return {parents.get(n, n) for n in names}


def _no_table_read_whole(db: psycopg.Connection[Any], plan: str, case: object) -> None:
    for table in SCANNED.findall(plan):
        # an empty partition (today's, the default) costs nothing to read
        empty = db.execute(
            sql.SQL("SELECT NOT EXISTS (SELECT 1 FROM {})").format(sql.Identifier(table))
        ).fetchone()
        assert table.startswith("mq_history"), f"{case}:\n{plan}"
        assert empty == (True,), f"{case}:\n{plan}"


def test_bulk_statements_walk_the_filters_index(big_queue: psycopg.Connection[Any]) -> None:
    for action, criteria, index in CASES:
        params: dict[str, object] = {
            **filter_params(JobFilter(**criteria), action),  # type: ignore[arg-type]
            "action": action,
            "batch": 1000,
            "reason": "plan",
            "release_chains": False,
            "after": uuid.UUID(int=0),
        }
        plan = _plan(big_queue, "bulk_batch", params)
        _no_table_read_whole(big_queue, plan, (action, criteria))
        assert index in _indexes(big_queue, plan), (action, criteria, plan)
        if criteria not in BROAD:
            count_plan = _plan(big_queue, "bulk_count", params)
            _no_table_read_whole(big_queue, count_plan, ("count", action, criteria))
        if params["history_states"]:
            history = _plan(big_queue, "bulk_delete_history", params)
            _no_table_read_whole(big_queue, history, ("history", criteria))
            assert HISTORY_INDEXES[str(params["walk"])] in _indexes(big_queue, history), history


def _ids(db: psycopg.Connection[Any], where: str) -> set[uuid.UUID]:
    return {r[0] for r in db.execute(f"SELECT id FROM mq_jobs WHERE {where}").fetchall()}


def test_small_batches_take_exactly_the_matching_jobs(db: psycopg.Connection[Any]) -> None:
    for statement in FILL:
        db.execute(statement.encode(), {"n": 3_000})
    cancellable = _ids(db, "state IN ('s', 'r') AND channel_name IN ('ch2', 'ch5')")
    # retrying jobs are scheduled ones that failed an attempt: not asked for here
    retrying = _ids(db, "state = 's' AND attempts > 0")
    wanted = cancellable - retrying
    other_channels = _ids(db, "channel_name NOT IN ('ch2', 'ch5')")
    before = db.execute("SELECT count(*) FROM mq_history WHERE state = 'cancelled'").fetchone()
    assert before is not None
    for channel in ("ch2", "ch5"):
        job_filter = JobFilter(states=["scheduled", "ready"], channel_name=channel)
        expected = count_matching(db, job_filter, action="cancel")
        assert cancel_matching(db, job_filter, batch_size=7) == expected
    assert not _ids(db, "true") & wanted
    assert retrying <= _ids(db, "true")
    assert _ids(db, "channel_name NOT IN ('ch2', 'ch5')") == other_channels
    cancelled = db.execute("SELECT count(*) FROM mq_history WHERE state = 'cancelled'").fetchone()
    assert cancelled == (before[0] + len(wanted),)
    # across kept states and partitions, a state walk in small batches
    db.execute(
        "UPDATE mq_history SET expires_at = expires_at + interval '3 days' WHERE id IN "
        "(SELECT id FROM mq_history ORDER BY id DESC LIMIT 100)"
    )
    kept = db.execute("SELECT count(*) FROM mq_history").fetchone()
    assert kept is not None
    failed = len(_ids(db, "state = 'f'"))
    deleted = delete_matching(
        db,
        JobFilter(states=["failed", "completed", "cancelled"]),
        batch_size=11,
        release_chains=True,
    )
    assert deleted == kept[0] + failed
    assert db.execute("SELECT count(*) FROM mq_history").fetchone() == (0,)
    assert not _ids(db, "state = 'f'")
