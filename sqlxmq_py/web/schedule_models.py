"""What the HTTP API takes and answers about cron schedules, as typed models made from the
admin API's rows."""

from __future__ import annotations

from pydantic import Field

from ..admin import Schedule
from .fields import JobId, Model, Text, Timestamp

__all__ = [
    "ScheduleDeleted",
    "ScheduleRequest",
    "ScheduleResponse",
    "ScheduleTriggered",
    "Schedules",
]


class ScheduleRequest(Model):
    """The schedule to enable, disable, trigger or delete."""

    name: Text = Field(description="The schedule's name (GET /api/schedules lists them).")


class ScheduleResponse(Model):
    """A cron schedule recorded by the runners."""

    name: str
    job_name: str = Field(description="The job each tick spawns.")
    channel_name: str
    cron: str = Field(description="The crontab expression (five fields, or six with seconds).")
    timezone: str = Field(description="The IANA time zone the expression is read in.")
    enabled: bool = Field(
        description="Runners tick it. A disabled schedule stays disabled when a runner that "
        "declares it starts, until it is enabled again."
    )
    next_tick: Timestamp | None = Field(
        description="The next tick runners will spawn (at or before now: due at the next "
        "maintenance pass); null while disabled."
    )
    last_spawned_tick: Timestamp | None = Field(
        description="The latest tick a runner spawned a job for; null for none yet."
    )
    last_tick: Timestamp = Field(
        description="The schedule's clock: ticks up to it are handled, spawned or passed over."
    )
    backfill_s: float = Field(
        description="Missed ticks this recent are spawned late (a minute at least)."
    )

    @classmethod
    def of(cls, schedule: Schedule) -> ScheduleResponse:
        """The answer for an admin API ``Schedule``."""
        fields = {n: getattr(schedule, n) for n in cls.model_fields if n != "backfill_s"}
        return cls.model_construct(**fields, backfill_s=schedule.backfill.total_seconds())


class Schedules(Model):
    """Every recorded schedule, by name."""

    schedules: list[ScheduleResponse]

    @classmethod
    def of(cls, schedules: list[Schedule]) -> Schedules:
        """The answer for the admin API's ``Schedule`` rows."""
        return cls.model_construct(schedules=[ScheduleResponse.of(s) for s in schedules])


class ScheduleTriggered(Model):
    """The job a trigger spawned."""

    name: str
    job_id: JobId = Field(description="The job spawned now (GET /api/jobs/{id} follows it).")


class ScheduleDeleted(Model):
    """A deleted schedule."""

    name: str
    deleted: bool = Field(
        description="Always true. A runner that still declares it records it again (enabled) "
        "when it starts: disable it to stop it for good."
    )
