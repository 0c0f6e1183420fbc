"""The runner's statements keep their index plans whatever the statistics say (issue 9.22).

After a held snapshot is released, autovacuum once recorded ``mq_jobs`` as 0 rows in 52,027
pages; leases then took 1.2-1.4 s (300-500x slower) until someone ran ANALYZE. Here the queue
holds 200,000 jobs, the statistics are set to the worst values (none, empty, tiny, huge), and
each runner statement, planned afresh in a new session, must touch a few hundred pages, not
the thousands of a scan of the tables (counted by EXPLAIN's buffers, not by a clock).
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from sqlxmq_py.sql import query

from ..helpers import lease_params
from ..plans import function_plan, plan_nodes

JOBS = 200_000
PAGE_BUDGET = 1_500
"""Pages a statement of the runner may touch for 20 jobs: a scan of mq_jobs alone is ~2,900."""

STATISTICS = {
    "never analyzed": -1,
    "empty": 0,
    "tiny": 10,
    "huge": 1e9,
}


@pytest.fixture
def big_queue(db: psycopg.Connection[Any]) -> list[tuple[Any, Any]]:
    """200,000 ready jobs in three groups, 20 due scheduled ones, and 20 leased (returned as
    (id, token)), analysed."""
    db.execute(
        "INSERT INTO mq_payloads (id, name, retry_backoff, payload_json) "
        "SELECT mq_uuid7(), 'bulk', '1 s', '{\"n\": 1}' FROM generate_series(1, %s)",
        (JOBS,),
    )
    db.execute(
        "INSERT INTO mq_jobs (id, channel_name, channel_args, state, max_attempts, payload_size)"
        " SELECT id, 'bulk', (row_number() OVER () % 3)::text, 'r', 5, 8 FROM mq_payloads"
    )
    db.execute(
        "UPDATE mq_jobs SET state = 's', attempt_at = now() - interval '1 minute' "
        "WHERE id IN (SELECT id FROM mq_jobs ORDER BY id LIMIT 20)"
    )
    leased = db.execute(
        "UPDATE mq_jobs SET state = 'l', attempts = 1, lease_token = gen_random_uuid(), "
        "attempt_at = now() + interval '1 minute' "
        "WHERE id IN (SELECT id FROM mq_jobs WHERE state = 'r' ORDER BY id DESC LIMIT 20) "
        "RETURNING id, lease_token"
    ).fetchall()
    db.execute("ANALYZE mq_jobs")
    db.execute("ANALYZE mq_payloads")
    return leased


def set_statistics(db: psycopg.Connection[Any], reltuples: float) -> None:
    """The tables and their indexes claim ``reltuples`` rows; column statistics are gone."""
    db.execute(
        "UPDATE pg_class SET reltuples = %s WHERE relname LIKE 'mq\\_jobs%%' "
        "OR relname LIKE 'mq\\_payloads%%'",
        (reltuples,),
    )
    db.execute(
        "DELETE FROM pg_statistic WHERE starelid IN ('mq_jobs'::regclass, 'mq_payloads'::regclass)"
    )


def pages(conn: psycopg.Connection[Any], statement: bytes, params: dict[str, object]) -> int:
    """The shared buffers one run of ``statement`` touched (rolled back)."""
    with conn.transaction(force_rollback=True):
        row = conn.execute(b"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement, params)
        plan = row.fetchone()
    assert plan is not None
    document = plan[0] if isinstance(plan[0], list) else json.loads(plan[0])
    top = document[0]["Plan"]
    return int(top["Shared Hit Blocks"]) + int(top["Shared Read Blocks"])


@pytest.mark.parametrize("reltuples", STATISTICS.values(), ids=STATISTICS.keys())
def test_runner_statements_touch_few_pages_whatever_the_statistics(
    dsn: str, db: psycopg.Connection[Any], big_queue: list[tuple[Any, Any]], reltuples: float
) -> None:
    set_statistics(db, reltuples)
    ids = [job_id for job_id, _ in big_queue]
    tokens = [token for _, token in big_queue]
    held = {"ids": ids, "tokens": tokens}
    statements: dict[str, tuple[bytes, dict[str, object]]] = {
        "lease": (query("lease"), lease_params(limit=20, durable=False)),
        "fetch_lease": (query("fetch_lease"), lease_params(limit=20)),
        "complete": (
            query("complete"),
            {**held, "results": [None] * 20, "default_retain": timedelta(0), "wait": False},
        ),
        "fail": (
            query("fail"),
            {**held, "delays": [timedelta(seconds=1)] * 20, "errors": ["x"] * 20, "wait": False},
        ),
        "renew": (query("renew"), {**held, "default_lease": timedelta(seconds=30)}),
        "release": (query("release"), {**held, "by": "host:1", "started": True}),
        "promote": (query("promote"), {"channel_names": None, "exclusive": True}),
        "expire_leases": (query("expire_leases"), {}),
        "maintain": (query("maintain"), {}),
    }
    touched: dict[str, int] = {}
    for name, (statement, params) in statements.items():
        # a session of its own: its functions' plans are made under these statistics
        with psycopg.connect(dsn, autocommit=True) as conn:
            pages(conn, statement, params)  # the first call plans (and reads the catalogs)
            touched[name] = pages(conn, statement, params)
    assert {n: p for n, p in touched.items() if p > PAGE_BUDGET} == {}, touched


RUNNER_INDEXES = {
    "mq_jobs_pkey",
    "mq_jobs_ready_idx",
    "mq_jobs_scheduled_idx",
    "mq_jobs_scheduled_channel_idx",
    "mq_jobs_leased_idx",
    "mq_jobs_uncommitted_idx",
    "mq_jobs_ordered_idx",
    "mq_payloads_pkey",
}
"""The indexes the runner's statements are written for."""


def test_no_other_index_can_stand_in_for_the_runners_own(
    db: psycopg.Connection[Any], big_queue: list[tuple[Any, Any]]
) -> None:
    """Bad statistics make every index look as cheap as any other, so the runner's statements
    must be unable to use an index not meant for them (the admin indexes hold id and
    channel_name too): even with the primary keys gone, their plans use no other index."""
    set_statistics(db, 0)
    db.execute("ALTER TABLE mq_jobs DROP CONSTRAINT mq_jobs_pkey")
    db.execute("ALTER TABLE mq_payloads DROP CONSTRAINT mq_payloads_pkey")
    ids = [job_id for job_id, _ in big_queue]
    tokens = [token for _, token in big_queue]
    plans = {
        "lease": function_plan(db, "mq_lease", lease_params(limit=20, durable=False)),
        **{
            f"walk {statement}": function_plan(
                db,
                "mq_ready_groups",
                {
                    "names": None if statement < 2 else ["", "other"],
                    "cursor_name": "" if statement % 2 == 0 else None,
                    "cursor_args": "" if statement % 2 == 0 else None,
                    "limit": 20,
                    "excluded": [],
                },
                query=statement,
            )
            for statement in range(4)
        },
        "renew": function_plan(
            db, "mq_renew", {"ids": ids, "tokens": tokens, "default_lease": timedelta(seconds=30)}
        ),
        "release": function_plan(
            db,
            "mq_release",
            {"ids": ids, "tokens": tokens, "by": "host:1", "started": True},
            variables={"v_cancel": []},
        ),
        "promote": function_plan(
            db,
            "mq_promote",
            {"channel_names": None, "exclusive": False},
            variables={"v_promoted": 0},
        ),
    }
    used = {
        name: sorted({n["Index Name"] for n in plan_nodes(plan) if "Index Name" in n})
        for name, plan in plans.items()
    }
    strays = {name: set(indexes) - RUNNER_INDEXES for name, indexes in used.items()}
    assert {name: s for name, s in strays.items() if s} == {}, used
