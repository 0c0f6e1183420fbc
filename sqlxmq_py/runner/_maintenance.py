"""Periodic upkeep shared by all runners, and the per-minute attempt counters each runner adds
to ``mq_stats``.

One runner at a time does the upkeep (a transaction-level advisory lock, held by one statement
on the server, never across a pause of the runner's process): expire leases of dead runners and
two-phase jobs that were never committed, repair ordered chains and continuations whose wake-up
was lost in a race, drop the history's partitions of days wholly past and make the coming
days' (mq_history_rotate), and drop expired throttle windows, statistics, stale runner
announcements and idle windows of rate keys. Then every runner spawns the cron ticks that are
due (each claimed once).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from ..cron import run_due_schedules
from ..hooks import JobOutcome
from ..sql import query
from ._connection import DedicatedConnection

__all__ = ["RATE_PRUNE_BATCH", "AttemptStats", "maintain"]

RATE_PRUNE_BATCH = 10_000
"""Idle rate windows dropped per upkeep pass (a key whose every start left its window)."""

_STAT_COLUMNS = {"completed": 0, "retrying": 1, "failed": 2, "interrupted": 3}


async def maintain(conn: DedicatedConnection, log: Any) -> None:
    """One upkeep pass: a single statement (mq_maintain), skipped if another runner is doing
    it, then the due cron ticks (each schedule's tick is claimed with a compare-and-set that
    skips a schedule another runner is spawning)."""
    for event, job_id, job_name, attempt, final, count in await conn.execute(query("maintain")):
        if event == "lease_expired" and job_id is not None:
            log.warning(
                "lease_expired", job_id=str(job_id), job_name=job_name, attempt=attempt, final=final
            )
        elif event == "uncommitted_job_discarded" and job_id is not None:
            log.warning("uncommitted_job_discarded", job_id=str(job_id), job_name=job_name)
        elif event == "repaired":
            log.info("queue_repaired", count=count)
        elif event == "history_partitions_dropped":  # whole days of expired history
            log.info(event, count=count)
        else:
            log.warning(event, count=count)
    ((pruned,),) = await conn.execute(query("rate_prune"), {"limit": RATE_PRUNE_BATCH})
    if pruned:
        log.debug("rate_windows_pruned", count=pruned)
    for schedule, tick in await conn.run(run_due_schedules):
        log.info("cron_job_spawned", schedule=schedule, tick=tick.isoformat())


class AttemptStats:
    """Finished attempts counted in memory per minute and channel, added to ``mq_stats`` in
    one statement now and then (nothing is written on the completion path)."""

    def __init__(self) -> None:
        """Starts with nothing counted."""
        self._counts: dict[tuple[int, str], list[int]] = {}  # (Unix minute, channel)

    def add(self, channel_name: str, outcome: JobOutcome) -> None:
        """Counts one finished attempt (completed, retrying, failed or interrupted; others are not
        counted)."""
        column = _STAT_COLUMNS.get(outcome)
        if column is not None:
            key = (int(time.time()) // 60, channel_name)
            counts = self._counts.get(key)
            if counts is None:
                counts = self._counts[key] = [0, 0, 0, 0]
            counts[column] += 1

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
                    "interrupted": [c[3] for c in counts.values()],
                },
            )
        except Exception:
            for key, values in counts.items():
                merged = self._counts.setdefault(key, [0, 0, 0, 0])
                for i, n in enumerate(values):
                    merged[i] += n
            raise
