"""Crontab expressions and ticks, pure: checking an expression and a time zone, and which ticks
are due. ``@job(cron=...)`` and the schedules of ``cron.py`` both use it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from .errors import ConfigurationError

__all__ = ["ON_TIME_GRACE", "check_cron", "check_zone", "due_ticks", "next_tick", "tick_key"]

ON_TIME_GRACE = timedelta(minutes=1)
"""A tick this late is still spawned without backfill (runner restarts, maintenance lag)."""


def check_cron(expr: object) -> str:
    """Checks a crontab expression (five fields, or six with seconds); returns it."""
    if not isinstance(expr, str) or not croniter.is_valid(expr):
        raise ConfigurationError(
            f"cron must be a crontab expression like '*/5 * * * *', got {expr!r}"
        )
    return expr


def check_zone(tz: object) -> ZoneInfo:
    """The time zone named ``tz`` (an IANA name such as ``"Europe/Paris"``)."""
    if not isinstance(tz, str):
        raise ConfigurationError(f"tz must be an IANA time zone name, got {tz!r}")
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigurationError(f"tz must be an IANA time zone name, got {tz!r}") from exc


def due_ticks(
    cron: str, tz: str, last_tick: datetime, now: datetime, backfill: timedelta
) -> tuple[list[datetime], datetime]:
    """The ticks to spawn now, and the new ``last_tick``.

    Every tick after ``last_tick`` up to ``now`` is due; those older than the backfill window
    (at least :data:`ON_TIME_GRACE`) are skipped rather than spawned late.
    """
    window = max(backfill, ON_TIME_GRACE)
    zone = check_zone(tz)
    start = max(last_tick, now - window - timedelta(seconds=1))
    ticks: list[datetime] = []
    it = croniter(cron, start.astimezone(zone))
    while (tick := it.get_next(datetime)) <= now:
        ticks.append(tick)
    if not ticks:
        return [], last_tick
    utc = [t.astimezone(UTC) for t in ticks]
    return [t for t in utc if t >= now - window and t > last_tick], utc[-1]


def next_tick(
    cron: str, tz: str, last_tick: datetime, now: datetime, backfill: timedelta
) -> datetime:
    """The next tick a runner will spawn (as :func:`due_ticks` would): at or before ``now`` when
    a tick is due and the runners have not spawned it yet."""
    window = max(backfill, ON_TIME_GRACE)
    start = max(last_tick, now - window - timedelta(seconds=1))
    it = croniter(cron, start.astimezone(check_zone(tz)))
    while (tick := it.get_next(datetime).astimezone(UTC)) < now - window:
        pass  # the ticks due_ticks passes over: older than the window
    return tick


def tick_key(schedule_name: str, tick: datetime) -> str:
    """The job key of a tick's job: ``cron:<schedule>:<tick in ISO 8601>``."""
    return f"cron:{schedule_name}:{tick.isoformat()}"
