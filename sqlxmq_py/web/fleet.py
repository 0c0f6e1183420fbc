"""What the HTTP API answers about the fleet: the channels (paused or not, their limits) and
the live runners, as typed models made from the admin API's rows."""

from __future__ import annotations

from pydantic import Field

from ..admin import ChannelInfo, WorkerInfo
from .fields import Count, JobId, Model, Timestamp

__all__ = ["ChannelRow", "Channels", "WorkerResponse", "Workers"]


class ChannelRow(Model):
    """A channel: paused or not, its limit, its ready and running jobs."""

    channel_name: str
    paused: bool = Field(description="Runners start none of its jobs; running ones finish.")
    max_running: Count | None = Field(
        description="The most of its jobs that may run at once across all runners (null: no limit)."
    )
    ready: Count = Field(description="Jobs that may run now (or would, if not paused).")
    running: Count

    @classmethod
    def of(cls, channel: ChannelInfo) -> ChannelRow:
        """The row of an admin API ``ChannelInfo``."""
        return cls.model_construct(**{n: getattr(channel, n) for n in cls.model_fields})


class Channels(Model):
    """Every channel with jobs, a limit or a pause, by name."""

    channels: list[ChannelRow]

    @classmethod
    def of(cls, channels: list[ChannelInfo]) -> Channels:
        """The answer for the admin API's ``ChannelInfo`` rows."""
        return cls.model_construct(channels=[ChannelRow.of(c) for c in channels])


class WorkerResponse(Model):
    """A runner announced in the database."""

    id: JobId = Field(description="The runner's id (leases record it).")
    host: str | None
    pid: int | None
    version: str | None = Field(description="The sqlxmq_py version it runs.")
    channel_names: list[str] | None = Field(description="Its channels; null: every channel.")
    min_concurrency: int | None
    max_concurrency: int | None
    idle: bool = Field(description="Waiting for work (spawns notify it).")
    started_at: Timestamp
    heartbeat_at: Timestamp = Field(description="Its last heartbeat (every 10 s).")
    running: Count = Field(description="Jobs it runs now.")
    stale: bool = Field(
        description="Its heartbeat is older than 30 s: it stopped without saying so or cannot "
        "reach the database; maintenance removes it after 5 minutes."
    )


class Workers(Model):
    """The live runners."""

    workers: list[WorkerResponse]

    @classmethod
    def of(cls, workers: list[WorkerInfo]) -> Workers:
        """The answer for the admin API's ``WorkerInfo`` rows."""
        fields = WorkerResponse.model_fields
        rows = [
            WorkerResponse.model_construct(**{n: getattr(w, n) for n in fields}) for w in workers
        ]
        return cls.model_construct(workers=rows)
