"""Recurring jobs: crontab schedules whose ticks are spawned exactly once, whatever the number
of runners.

A schedule lives in ``mq_schedules``. The runner that holds the maintenance lock computes the
due ticks (croniter parses the expression) and, in one transaction, moves the schedule's
``last_tick`` forward with a compare-and-set and spawns one job per tick; a runner that lost the
race spawns nothing. Ticks missed while no runner was up are skipped, unless a ``backfill``
window asks for them. A schedule an operator disabled (``admin.disable_schedule``) is not
ticked, and recording it again at start-up leaves it disabled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import starmap
from typing import TYPE_CHECKING, Any

from psycopg import AsyncConnection

from ._crontab import ON_TIME_GRACE, check_cron, check_zone, due_ticks
from ._insert import insert_statement
from ._validate import Duration, check_name, to_timedelta
from .admin._schedules import ScheduleRow, tick_builder
from .builder import SPAWN_HOOKS
from .payload import encode_json
from .rate_limit import check_rate_keys
from .sql import query

if TYPE_CHECKING:
    from .job import NamedJob

__all__ = ["ON_TIME_GRACE", "CronSchedule", "check_cron", "due_ticks", "run_due_schedules"]


@dataclass(frozen=True, kw_only=True)
class CronSchedule:
    """A recurring job: ``job_name`` spawned at every tick of ``cron`` in time zone ``tz``."""

    name: str
    cron: str
    tz: str
    job_name: str
    channel_name: str
    channel_args: str
    payload_json: str | None
    max_attempts: int
    retry_backoff: timedelta
    priority: int
    lease: timedelta | None
    retain_for: timedelta | None
    dead_letter: str | None
    dead_letter_channel: str | None
    ordered: bool
    backfill: timedelta
    rate_keys: tuple[str, ...] = ()
    """The rate keys every tick's job carries (stored with the schedule, migration 0015)."""

    @classmethod
    def for_job(
        cls,
        cron: str,
        job: NamedJob[..., Any],
        *,
        payload: object = None,
        name: str | None = None,
        tz: str = "UTC",
        backfill: Duration = 0,
        channel_args: str = "",
        rate_keys: Sequence[str] | None = None,
    ) -> CronSchedule:
        """A schedule spawning ``job`` with its decorator's defaults (its rate keys too, unless
        ``rate_keys`` replaces them); options validated."""
        check_zone(tz)
        options = job.options
        keys = options.rate_keys if rate_keys is None else check_rate_keys(rate_keys)
        return cls(
            name=check_name("name", name if name is not None else job.name),
            cron=check_cron(cron),
            tz=tz,
            job_name=job.name,
            channel_name=options.channel_name,
            channel_args=check_name("channel_args", channel_args),
            payload_json=None if payload is None else encode_json(payload),
            max_attempts=options.retries + 1,
            retry_backoff=options.backoff,
            priority=options.priority,
            lease=options.lease,
            retain_for=options.retain_for,
            dead_letter=options.dead_letter,
            dead_letter_channel=options.dead_letter_channel,
            ordered=options.ordered,
            backfill=to_timedelta("backfill", backfill),
            rate_keys=keys,
        )

    def upsert_params(self) -> dict[str, object]:
        """The parameters of the ``schedule_upsert`` statement."""
        return {
            "name": self.name,
            "cron": self.cron,
            "timezone": self.tz,
            "job_name": self.job_name,
            "channel_name": self.channel_name,
            "channel_args": self.channel_args,
            "payload_json": self.payload_json,
            "max_attempts": self.max_attempts,
            "retry_backoff": self.retry_backoff,
            "priority": self.priority,
            "lease": self.lease,
            "retain_for": self.retain_for,
            "dead_letter": self.dead_letter,
            "dead_letter_channel": self.dead_letter_channel,
            "ordered": self.ordered,
            "backfill": self.backfill,
            "rate_keys": sorted(self.rate_keys) or None,
        }


async def upsert_schedules(conn: AsyncConnection[Any], schedules: Sequence[CronSchedule]) -> None:
    """Records (or updates) schedules; a schedule keeps its last tick across updates."""
    for schedule in schedules:
        await conn.execute(query("schedule_upsert"), schedule.upsert_params())


async def run_due_schedules(conn: AsyncConnection[Any]) -> list[tuple[str, datetime]]:
    """Spawns the due ticks of every schedule; returns (schedule, tick) of those spawned.

    Each schedule is handled in a transaction of its own (a savepoint if ``conn`` is already
    in one): the compare-and-set of its last tick and the spawn of its jobs commit together.
    """
    spawned: list[tuple[str, datetime]] = []
    cur = await conn.execute(query("schedules"))
    for row in starmap(ScheduleRow, await cur.fetchall()):
        if not row.enabled:
            continue  # disabled by an operator (schedule_advance checks it again)
        name, last_tick = row.name, row.last_tick
        ticks, new_last = due_ticks(row.cron, row.timezone, last_tick, row.now, row.backfill)
        if new_last == last_tick:
            continue
        async with conn.transaction():
            cur = await conn.execute(
                query("schedule_advance"),
                {
                    "name": name,
                    "last_tick": last_tick,
                    "new_tick": new_last,
                    "spawned_tick": ticks[-1] if ticks else None,
                },
            )
            if await cur.fetchone() is None:
                continue  # another runner moved it on: its spawn stands
            if ticks:
                builders = [tick_builder(row, tick) for tick in ticks]
                SPAWN_HOOKS.run(builders)
                statement, params, _ = insert_statement([b.to_write() for b in builders])
                await conn.execute(statement, params)
        spawned.extend((name, tick) for tick in ticks)
    return spawned
