"""What the HTTP API answers about the queue as a whole: jobs per channel and state, and
finished attempts per minute (the overview's charts), made from the admin API's rows."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from ..admin import QueueCount, StatsBucket
from .fields import Count, Model, Timestamp

__all__ = ["Bucket", "CountRow", "QueueCounts", "Throughput"]


class CountRow(Model):
    """Jobs of a channel in a state."""

    channel_name: str
    state: Literal["uncommitted", "scheduled", "retrying", "waiting", "ready", "running", "failed"]
    count: Annotated[int, Field(ge=1)]
    exact: bool = Field(
        description="false: count (and oldest_ready_age_s) are estimates. Up to 1000 jobs of a "
        "channel in a state (10,000 running jobs in all) are counted exactly; more are "
        "estimated from a sample of the queue, so that counting takes the same time however "
        "long the queue is."
    )
    oldest_ready_age_s: float | None = Field(
        description="For ready jobs: the age of the oldest one."
    )


class QueueCounts(Model):
    """Jobs per channel and state."""

    counts: list[CountRow]
    exact: bool = Field(description="Whether every count is exact.")

    @classmethod
    def of(cls, counts: list[QueueCount]) -> QueueCounts:
        """The answer for the admin API's ``QueueCount`` rows."""
        fields = CountRow.model_fields
        rows = [CountRow.model_construct(**{n: getattr(c, n) for n in fields}) for c in counts]
        return cls.model_construct(counts=rows, exact=all(c.exact for c in counts))


class Bucket(Model):
    """Finished attempts in one minute."""

    minute: Timestamp = Field(description="The minute.")
    completed: Count
    retried: Count
    failed: Count
    interrupted: Count


class Throughput(Model):
    """Finished attempts per minute."""

    since: Timestamp = Field(description="The first minute counted.")
    buckets: list[Bucket] = Field(
        description="Minutes with finished attempts, oldest first (others left out)."
    )

    @classmethod
    def of(cls, since: datetime, buckets: list[StatsBucket]) -> Throughput:
        """The answer for the admin API's buckets."""
        rows = [
            Bucket.model_construct(
                minute=b.minute,
                completed=b.completed,
                retried=b.retried,
                failed=b.failed,
                interrupted=b.interrupted,
            )
            for b in buckets
        ]
        return cls.model_construct(since=since, buckets=rows)
