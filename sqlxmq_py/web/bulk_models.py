"""What the bulk actions of the HTTP API accept and answer: a filter of jobs (the fields of
``sqlxmq_py.admin.JobFilter``) and the counts."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal, cast

from pydantic import ConfigDict, Field, JsonValue

from ..admin import JobFilter
from ..states import StateName as JobStateName
from .fields import Count, Model, Seconds, Text
from .requests import StateName
from .responses import BlockedChainResponse

__all__ = [
    "BulkCancelRequest",
    "BulkCountRequest",
    "BulkCountResponse",
    "BulkDeleteRequest",
    "BulkRequest",
    "BulkResponse",
]


_CRITERIA = (
    ("states", "array"),
    ("channel_name", "string"),
    ("name", "string"),
    ("job_key", "string"),
    ("error", "string"),
    ("older_than_s", "number"),
    ("newer_than_s", "number"),
)
_ONE_CRITERION: list[JsonValue] = [
    {"required": [name], "properties": {name: {"type": kind}}} for name, kind in _CRITERIA
]
_ONE_CRITERION.append({"required": ["all"], "properties": {"all": {"const": True}}})


class BulkRequest(Model):
    """Every job matching all the criteria given (at least one, or all: true). Each action
    takes only the states it applies to: retry failed jobs; cancel scheduled, waiting, ready
    and retrying ones (never running ones); delete failed, completed and cancelled ones; run
    now scheduled and retrying ones."""

    # beside the fields: one criterion at least (a non-null value), or all: true
    model_config = ConfigDict(json_schema_extra={"anyOf": _ONE_CRITERION})

    states: list[StateName] | None = Field(
        None, description="Only jobs in these states (narrowing the action's own)."
    )
    channel_name: Text | None = Field(None, description="Only jobs of this channel.")
    name: Text | None = Field(None, description="Only jobs of this name.")
    job_key: Text | None = Field(None, description="Only the job with this key.")
    error: Text | None = Field(
        None,
        description="Only jobs whose last error contains this text (case-insensitive; % and "
        "_ match themselves).",
    )
    older_than_s: Seconds | None = Field(
        None, description="Only jobs created more than this many seconds ago."
    )
    newer_than_s: Seconds | None = Field(
        None, description="Only jobs created less than this many seconds ago."
    )
    all: bool = Field(False, description="Every job: required when no other criterion is given.")

    def job_filter(self) -> JobFilter:
        """The admin API's filter (raises ``EmptyFilterError``, a 400, when it is empty)."""
        return JobFilter(
            states=None if self.states is None else cast(list[JobStateName], self.states),
            channel_name=self.channel_name,
            name=self.name,
            job_key=self.job_key,
            error=self.error,
            older_than=None if self.older_than_s is None else timedelta(seconds=self.older_than_s),
            newer_than=None if self.newer_than_s is None else timedelta(seconds=self.newer_than_s),
            all=self.all,
        )


class BulkCountRequest(BulkRequest):
    """The jobs to count; with action, only those that action would change."""

    action: Literal["retry", "cancel", "delete", "run_now"] | None = Field(
        None, description="Count only the jobs this action applies to."
    )


class BulkCancelRequest(BulkRequest):
    """The jobs to cancel."""

    reason: Text | None = Field(None, description="Recorded as the jobs' last error.")


class BulkDeleteRequest(BulkRequest):
    """The jobs to delete."""

    release_chains: bool = Field(
        False,
        description="Delete the failed head of an ordered chain too, which runs the jobs "
        "waiting behind it. Without it, a delete that would release chains answers 409 "
        "(chains_would_be_released) with the chains, and deletes nothing.",
    )


class BulkCountResponse(Model):
    """How many jobs match."""

    count: Count
    chains: list[BlockedChainResponse] = Field(
        description="With action delete: the ordered chains the delete would release (their "
        "failed head matches); empty otherwise."
    )


class BulkResponse(Model):
    """How many jobs the action changed."""

    changed: Count
