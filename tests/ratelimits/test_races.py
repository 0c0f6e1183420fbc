"""A lease racing the upkeep that drops idle windows: a window dropped while the lease waits
for its lock is made again, never skipped (a skipped window would admit every job unrecorded)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import psycopg

from sqlxmq_py import spawn_many
from sqlxmq_py.admin import set_rate_limit
from sqlxmq_py.pull import FetchedJob, fetch

from ..helpers import wait_until
from .jobs import limited, state_counts


async def test_a_window_dropped_while_a_lease_waits_for_it_is_made_again(
    dsn: str, conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    set_rate_limit(conn, "global", 1, per=timedelta(hours=1))
    spawn_many(conn, [limited.builder() for _ in range(3)])
    # an idle window: its one start left the window an hour ago
    conn.execute(
        "INSERT INTO mq_rate_windows VALUES "
        "('global', ARRAY[now() - interval '2 hours'], now() - interval '1 hour')"
    )
    conn.commit()
    # the upkeep drops it, holding the row until it commits
    conn.execute("SELECT mq_rate_prune(10)")

    def lease() -> list[FetchedJob]:
        with psycopg.connect(dsn, autocommit=True) as leaser:
            return fetch(leaser, None, limit=10)

    leasing = asyncio.create_task(asyncio.to_thread(lease))
    await wait_until(
        lambda: (
            db.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND query LIKE '%%mq_lease%%'"
            ).fetchone()
            == (1,)
        )
    )
    conn.commit()
    leased = await leasing
    assert len(leased) == 1
    assert state_counts(db) == {"l": 1, "s": 2}
    ((starts,),) = db.execute("SELECT cardinality(starts) FROM mq_rate_windows").fetchall()
    assert starts == 1
