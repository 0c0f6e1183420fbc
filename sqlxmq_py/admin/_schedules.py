"""The recurring schedules runners have recorded: list them, enable, disable, delete, and
spawn a schedule's job now.

A schedule declared in code (``JobRegistry.add_cron``, ``@job(cron=...)``) is recorded by every
runner that starts with it; that declaration updates the expression and the job's options but
never the ``enabled`` flag, so an operator's :func:`disable_schedule` holds across restarts and
deploys until :func:`enable_schedule`.
"""

from __future__ import annotations

import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import starmap
from typing import Any, NamedTuple, overload

from psycopg_pool import AsyncConnectionPool, ConnectionPool

from .. import _connections
from .._connections import AnyConnection, AsyncConnectionLike, Rows, SyncConnectionLike
from .._crontab import next_tick, tick_key
from .._validate import check_text
from ..builder import JobBuilder
from ..sql import QueryName, query

__all__ = [
    "Schedule",
    "ScheduleRow",
    "delete_schedule",
    "disable_schedule",
    "enable_schedule",
    "list_schedules",
    "tick_builder",
    "trigger_schedule",
]


@dataclass(frozen=True, kw_only=True)
class Schedule:
    """A recurring schedule recorded in the database (see ``JobRegistry.add_cron``).

    ``last_tick`` is the schedule's clock (ticks up to it are handled, spawned or passed over;
    a new schedule starts at its declaration); ``last_spawned_tick`` the latest tick a runner
    spawned a job for (None until the first); ``next_tick`` the next tick runners will spawn
    (at or before now when one is due; None while the schedule is disabled).
    """

    name: str
    cron: str
    timezone: str
    job_name: str
    channel_name: str
    last_tick: datetime
    next_tick: datetime | None = None
    last_spawned_tick: datetime | None = None
    backfill: timedelta = timedelta(0)
    enabled: bool = True


class ScheduleRow(NamedTuple):
    """A row of the ``schedules`` statement: a recorded schedule, and the database's now."""

    name: str
    cron: str
    timezone: str
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
    last_tick: datetime
    enabled: bool
    last_spawned_tick: datetime | None
    now: datetime
    rate_keys: list[str] | None
    """The rate keys its ticks carry (migration 0015; None: none)."""


def tick_builder(row: ScheduleRow, tick: datetime | None) -> JobBuilder:
    """The job a schedule spawns, with the options it recorded from its job: keyed by its tick
    (``cron:<schedule>:<tick>``), or without a key when spawned by hand (``tick=None``)."""
    builder = (
        JobBuilder(
            row.job_name,
            channel_name=row.channel_name,
            retries=row.max_attempts - 1,
            retry_backoff=row.retry_backoff,
            priority=row.priority,
            ordered=row.ordered,
            lease=row.lease,
            retain_for=row.retain_for,
        )
        .set_channel_args(row.channel_args)
        .set_dead_letter(row.dead_letter, channel_name=row.dead_letter_channel)
    )
    if row.payload_json is not None:
        builder.set_raw_json(row.payload_json)
    if row.rate_keys:
        builder.set_rate_keys(row.rate_keys)
    if tick is None:
        return builder
    return builder.set_job_key(tick_key(row.name, tick), "unsafe_dedupe")


def _schedule(r: ScheduleRow) -> Schedule:
    upcoming = next_tick(r.cron, r.timezone, r.last_tick, r.now, r.backfill) if r.enabled else None
    return Schedule(
        name=r.name,
        cron=r.cron,
        timezone=r.timezone,
        job_name=r.job_name,
        channel_name=r.channel_name,
        last_tick=r.last_tick,
        next_tick=upcoming,
        last_spawned_tick=r.last_spawned_tick,
        backfill=r.backfill,
        enabled=r.enabled,
    )


def _schedules(rows: Rows) -> list[Schedule]:
    return [_schedule(r) for r in starmap(ScheduleRow, rows)]


@overload
def list_schedules(conn: SyncConnectionLike) -> list[Schedule]: ...


@overload
def list_schedules(conn: AsyncConnectionLike) -> Coroutine[Any, Any, list[Schedule]]: ...


def list_schedules(conn: AnyConnection) -> list[Schedule] | Coroutine[Any, Any, list[Schedule]]:
    """The recurring schedules runners have recorded, by name. Any runner spawns every enabled
    schedule listed, whoever registered it: delete one that no code defines any more."""
    return _connections.run(conn, query("schedules"), None, _schedules)


def _found(rows: Rows) -> bool:
    return bool(rows)


def _by_name(
    conn: AnyConnection, statement: QueryName, name: str
) -> bool | Coroutine[Any, Any, bool]:
    params = {"name": check_text("name", name)}
    return _connections.run(conn, query(statement), params, _found)


@overload
def delete_schedule(conn: SyncConnectionLike, name: str) -> bool: ...


@overload
def delete_schedule(conn: AsyncConnectionLike, name: str) -> Coroutine[Any, Any, bool]: ...


def delete_schedule(conn: AnyConnection, name: str) -> bool | Coroutine[Any, Any, bool]:
    """Deletes a recurring schedule; returns whether it existed. A runner whose registry still
    defines it records it again (enabled) when it starts: disable it to stop it for good."""
    return _by_name(conn, "schedule_delete", name)


@overload
def enable_schedule(conn: SyncConnectionLike, name: str) -> bool: ...


@overload
def enable_schedule(conn: AsyncConnectionLike, name: str) -> Coroutine[Any, Any, bool]: ...


def enable_schedule(conn: AnyConnection, name: str) -> bool | Coroutine[Any, Any, bool]:
    """Enables a schedule; returns whether it exists. Ticks that fell while it was disabled
    are never spawned (not even within its backfill window): it resumes with its next tick."""
    return _by_name(conn, "schedule_enable", name)


@overload
def disable_schedule(conn: SyncConnectionLike, name: str) -> bool: ...


@overload
def disable_schedule(conn: AsyncConnectionLike, name: str) -> Coroutine[Any, Any, bool]: ...


def disable_schedule(conn: AnyConnection, name: str) -> bool | Coroutine[Any, Any, bool]:
    """Disables a schedule; returns whether it exists. Runners stop ticking it, and a runner
    that declares it at start-up keeps it disabled, until :func:`enable_schedule`."""
    return _by_name(conn, "schedule_disable", name)


def _row(rows: Rows) -> ScheduleRow | None:
    return ScheduleRow(*rows[0]) if rows else None


@overload
def trigger_schedule(conn: SyncConnectionLike, name: str) -> uuid.UUID | None: ...


@overload
def trigger_schedule(
    conn: AsyncConnectionLike, name: str
) -> Coroutine[Any, Any, uuid.UUID | None]: ...


def trigger_schedule(
    conn: AnyConnection, name: str
) -> uuid.UUID | Coroutine[Any, Any, uuid.UUID | None] | None:
    """Spawns a schedule's job now, once, in the caller's transaction; returns its id, or None
    when there is no such schedule. The job is the one a tick spawns (same job name, payload,
    channel and options) but has no job key; the schedule's ticks are left as they were, and a
    disabled schedule can be triggered too."""
    params = {"name": check_text("name", name)}
    if _connections.is_async(conn):
        return _trigger_async(conn, params)
    if isinstance(conn, ConnectionPool):
        with conn.connection() as pooled:
            return trigger_schedule(pooled, name)
    row = _row(_connections.fetch_sync(conn, query("schedule"), params))
    return None if row is None else tick_builder(row, None).spawn(conn)


async def _trigger_async(conn: AsyncConnectionLike, params: dict[str, str]) -> uuid.UUID | None:
    if isinstance(conn, AsyncConnectionPool):
        async with conn.connection() as pooled:
            return await _trigger_async(pooled, params)
    row = _row(await _connections.fetch_async(conn, query("schedule"), params))
    return None if row is None else await tick_builder(row, None).spawn(conn)
