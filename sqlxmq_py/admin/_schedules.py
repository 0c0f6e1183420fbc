"""The recurring schedules runners have recorded."""

from __future__ import annotations

from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import starmap
from typing import Any, NamedTuple, overload

from .. import _connections
from .._connections import AnyConnection, AsyncConnectionLike, Rows, SyncConnectionLike
from .._validate import check_text
from ..sql import query

__all__ = ["Schedule", "ScheduleRow", "delete_schedule", "list_schedules"]


@dataclass(frozen=True, kw_only=True)
class Schedule:
    """A recurring schedule recorded in the database (see ``JobRegistry.add_cron``)."""

    name: str
    cron: str
    timezone: str
    job_name: str
    channel_name: str
    last_tick: datetime


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
    now: datetime


def _schedules(rows: Rows) -> list[Schedule]:
    return [
        Schedule(
            name=r.name,
            cron=r.cron,
            timezone=r.timezone,
            job_name=r.job_name,
            channel_name=r.channel_name,
            last_tick=r.last_tick,
        )
        for r in starmap(ScheduleRow, rows)
    ]


@overload
def list_schedules(conn: SyncConnectionLike) -> list[Schedule]: ...


@overload
def list_schedules(conn: AsyncConnectionLike) -> Coroutine[Any, Any, list[Schedule]]: ...


def list_schedules(conn: AnyConnection) -> list[Schedule] | Coroutine[Any, Any, list[Schedule]]:
    """The recurring schedules runners have recorded. Any runner spawns every schedule listed,
    whoever registered it: delete one that no code defines any more."""
    return _connections.run(conn, query("schedules"), None, _schedules)


def _deleted(rows: Rows) -> bool:
    return bool(rows)


@overload
def delete_schedule(conn: SyncConnectionLike, name: str) -> bool: ...


@overload
def delete_schedule(conn: AsyncConnectionLike, name: str) -> Coroutine[Any, Any, bool]: ...


def delete_schedule(conn: AnyConnection, name: str) -> bool | Coroutine[Any, Any, bool]:
    """Deletes a recurring schedule; returns whether it existed. A runner whose registry still
    defines it records it again when it starts."""
    params = {"name": check_text("name", name)}
    return _connections.run(conn, query("schedule_delete"), params, _deleted)
