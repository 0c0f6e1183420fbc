"""Jobs without rate keys pay nothing for the feature but a NULL test: a lease of them never
calls the admission function (its call is behind a one-time test of the batch)."""

from __future__ import annotations

from typing import Any

import psycopg

from sqlxmq_py import spawn_many
from sqlxmq_py.admin import set_rate_limit
from sqlxmq_py.sql import query

from ..helpers import lease_params
from .jobs import free, limited


def admissions(conn: psycopg.Connection[Any]) -> int:
    """Calls of mq_rate_admit in the current transaction (function statistics are on)."""
    row = conn.execute(
        "SELECT coalesce(sum(calls), 0) FROM pg_stat_xact_user_functions "
        "WHERE funcname = 'mq_rate_admit'"
    ).fetchone()
    assert row is not None
    return int(row[0])


def test_a_lease_without_rate_keys_never_calls_the_admission(owner_dsn: str) -> None:
    with psycopg.connect(owner_dsn) as conn:
        set_rate_limit(conn, "global", 1, per=3600)
        spawn_many(conn, [free.builder() for _ in range(5)])
        conn.commit()
        conn.execute("SET track_functions = 'all'")
        rows = conn.execute(query("lease"), lease_params(limit=10)).fetchall()
        assert len(rows) == 5
        assert admissions(conn) == 0
        conn.commit()
        # the control: a batch holding one job with a key calls it once
        spawn_many(conn, [free.builder() for _ in range(3)] + [limited.builder()])
        conn.commit()
        rows = conn.execute(query("lease"), lease_params(limit=10)).fetchall()
        assert len(rows) == 4
        assert admissions(conn) == 1
