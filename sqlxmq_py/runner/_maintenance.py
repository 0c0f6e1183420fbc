"""Periodic upkeep shared by all runners, and the per-minute attempt counters each runner adds
to ``mq_stats``.

One runner at a time does the upkeep (a transaction-level advisory lock): spawn due cron ticks,
expire leases of dead runners and two-phase jobs that were never committed, unblock ordered
chains and continuations whose wake-up was lost in a race, and drop expired history, throttle
windows, statistics and stale runner announcements.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import psycopg

from ..cron import run_due_schedules
from ..hooks import JobOutcome
from ..sql import query
from ._connection import DedicatedConnection

__all__ = ["AttemptStats", "maintain"]

_STAT_COLUMNS = {"completed": 0, "retrying": 1, "failed": 2}


async def maintain(conn: psycopg.AsyncConnection[Any], log: Any) -> None:
    """One upkeep pass in one transaction, skipped if another runner is doing it."""
    async with conn.transaction():
        cur = await conn.execute(query("maintenance_lock"))
        row = await cur.fetchone()
        if row is None or not row[0]:
            return
        for schedule, tick in await run_due_schedules(conn):
            log.info("cron_job_spawned", schedule=schedule, tick=tick.isoformat())
        cur = await conn.execute(query("cancel_expired"))
        cancelled = await cur.fetchone()
        if cancelled is not None and cancelled[0]:
            log.warning("cancelled_jobs_expired", count=cancelled[0])
        cur = await conn.execute(query("expire_leases"))
        for job_id, state, attempts, name in await cur.fetchall():
            log.warning(
                "lease_expired",
                job_id=str(job_id),
                job_name=name,
                attempt=attempts,
                final=state == "f",
            )
        cur = await conn.execute(query("expire_uncommitted"))
        for job_id, name in await cur.fetchall():
            log.warning("uncommitted_job_discarded", job_id=str(job_id), job_name=name)
        cur = await conn.execute(query("sweep_blocked"))
        unblocked = len(await cur.fetchall())
        if unblocked:
            log.info("ordered_jobs_unblocked", count=unblocked)
        cur = await conn.execute(query("sweep_waiting"))
        swept = await cur.fetchone()
        if swept is not None and swept[0]:
            log.info("continuations_resolved", count=swept[0])
        await conn.execute(query("expire_history"))
        await conn.execute(query("expire_throttles"))
        await conn.execute(query("stats_expire"))
        await conn.execute(query("purge_listeners"))


class AttemptStats:
    """Finished attempts counted in memory per minute and channel, added to ``mq_stats`` in
    one statement now and then (nothing is written on the completion path)."""

    def __init__(self) -> None:
        """Starts with nothing counted."""
        self._counts: dict[tuple[int, str], list[int]] = {}  # (Unix minute, channel)

    def add(self, channel_name: str, outcome: JobOutcome) -> None:
        """Counts one finished attempt (completed, retrying or failed; others are not counted)."""
        column = _STAT_COLUMNS.get(outcome)
        if column is not None:
            minute = int(time.time()) // 60
            self._counts.setdefault((minute, channel_name), [0, 0, 0])[column] += 1

    async def flush(self, conn: DedicatedConnection) -> None:
        """Adds the counts to mq_stats; they are kept for the next flush if this one fails."""
        if not self._counts:
            return
        counts, self._counts = self._counts, {}
        try:
            await conn.execute(
                query("stats_add"),
                {
                    "buckets": [datetime.fromtimestamp(m * 60, UTC) for m, _ in counts],
                    "channel_names": [channel for _, channel in counts],
                    "completed": [c[0] for c in counts.values()],
                    "retried": [c[1] for c in counts.values()],
                    "failed": [c[2] for c in counts.values()],
                },
            )
        except Exception:
            for key, values in counts.items():
                merged = self._counts.setdefault(key, [0, 0, 0])
                for i, n in enumerate(values):
                    merged[i] += n
            raise
