"""Cron expressions and due ticks, and the options of a cron schedule (no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from sqlxmq_py import ConfigurationError, CurrentJob, JobRegistry, job
from sqlxmq_py.cron import due_ticks

T0 = datetime(2026, 3, 10, 12, 0, 10, 500_000, tzinfo=UTC)


def _ticks(cron: str, last: datetime, now: datetime, backfill: timedelta, tz: str = "UTC") -> Any:
    return due_ticks(cron, tz, last, now, backfill)


def test_due_ticks_every_second() -> None:
    ticks, new_last = _ticks("* * * * * *", T0 - timedelta(seconds=3), T0, timedelta(0))
    expected = [T0.replace(microsecond=0) - timedelta(seconds=n) for n in (2, 1, 0)]
    assert ticks == expected
    assert new_last == expected[-1]


def test_due_ticks_nothing_due_keeps_the_last_tick() -> None:
    last = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    ticks, new_last = _ticks("*/5 * * * *", last, last + timedelta(minutes=4), timedelta(0))
    assert ticks == []
    assert new_last == last


def test_due_ticks_without_backfill_skips_ticks_older_than_a_minute() -> None:
    # a runner was down for an hour: only the tick of the last minute runs
    ticks, new_last = _ticks("*/5 * * * *", T0 - timedelta(hours=1), T0, timedelta(0))
    assert ticks == [datetime(2026, 3, 10, 12, 0, tzinfo=UTC)]
    assert new_last == ticks[-1]
    # a tick more than a minute late is skipped, now and on every later look
    last = T0 - timedelta(hours=1)
    for late in (T0 + timedelta(minutes=2), T0 + timedelta(minutes=30)):
        ticks, last = _ticks("0 * * * *", last, late, timedelta(0))
        assert ticks == []


def test_due_ticks_with_backfill_spawns_missed_ticks_within_the_window() -> None:
    ticks, new_last = _ticks("*/5 * * * *", T0 - timedelta(hours=1), T0, timedelta(minutes=20))
    base = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    assert ticks == [base - timedelta(minutes=m) for m in (15, 10, 5, 0)]
    assert new_last == base
    # a window longer than the outage spawns every missed tick, none twice
    ticks, _ = _ticks("*/5 * * * *", T0 - timedelta(hours=1), T0, timedelta(days=1))
    assert len(ticks) == 12
    assert ticks[0] == base - timedelta(minutes=55)


def test_due_ticks_in_a_time_zone() -> None:
    paris = ZoneInfo("Europe/Paris")
    now = datetime(2026, 1, 3, 12, 0, tzinfo=UTC)
    ticks, _ = _ticks("0 9 * * *", now - timedelta(days=3), now, timedelta(days=5), "Europe/Paris")
    assert [t.astimezone(paris).hour for t in ticks] == [9, 9, 9]
    assert [t.astimezone(paris).day for t in ticks] == [1, 2, 3]
    assert ticks[-1] == datetime(2026, 1, 3, 8, 0, tzinfo=UTC)


def test_cron_options_are_validated() -> None:
    @job
    async def tick(current_job: CurrentJob) -> None:
        pass

    registry = JobRegistry([tick])
    with pytest.raises(ConfigurationError, match="cron"):
        registry.add_cron("every minute", tick)
    with pytest.raises(ConfigurationError, match="tz"):
        registry.add_cron("* * * * *", tick, tz="Mars/Olympus")
    with pytest.raises(ConfigurationError, match="backfill"):
        registry.add_cron("* * * * *", tick, backfill=-1)
    registry.add_cron("* * * * *", tick)
    with pytest.raises(ConfigurationError, match="twice"):
        registry.add_cron("*/2 * * * *", tick)
    with pytest.raises(ConfigurationError, match="cron"):
        job(cron="61 * * * *")


def test_next_tick_is_the_first_tick_due_ticks_will_spawn() -> None:
    from sqlxmq_py._crontab import next_tick

    paris = "Europe/Paris"
    # on time: the next tick after the clock, in the schedule's zone (03:00 Paris is 02:00 UTC
    # in March before the change to summer time)
    upcoming = next_tick("0 3 * * *", paris, T0, T0, timedelta(0))
    assert upcoming == datetime(2026, 3, 11, 2, 0, tzinfo=UTC)
    # late (no runner for an hour, no backfill): the tick due now, the one due_ticks spawns
    late_now = T0 + timedelta(hours=1)
    due = next_tick("* * * * *", "UTC", T0, late_now, timedelta(0))
    assert due <= late_now
    ticks, _ = _ticks("* * * * *", T0, late_now, timedelta(0))
    assert due == ticks[0]
    # with a backfill window, the oldest missed tick still within it
    ticks, _ = _ticks("* * * * *", T0, late_now, timedelta(minutes=10))
    assert next_tick("* * * * *", "UTC", T0, late_now, timedelta(minutes=10)) == ticks[0]
