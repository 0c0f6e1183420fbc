"""The filter of the bulk actions (``JobFilter``), the states each action applies to, and the
statements' parameters for a filter (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from .._validate import check_text
from ..errors import ConfigurationError
from ..states import JobState, StateName, to_state

__all__ = [
    "ACTION_STATES",
    "BulkAction",
    "EmptyFilterError",
    "JobFilter",
    "filter_params",
    "like_pattern",
    "walk_for",
]

BulkAction = Literal["retry", "cancel", "delete", "run_now"]

ACTION_STATES: Mapping[BulkAction, frozenset[JobState]] = {
    "retry": frozenset({JobState.FAILED}),
    "cancel": frozenset({JobState.SCHEDULED, JobState.WAITING, JobState.READY, JobState.RETRYING}),
    "delete": frozenset({JobState.FAILED, JobState.COMPLETED, JobState.CANCELLED}),
    "run_now": frozenset({JobState.SCHEDULED, JobState.RETRYING}),
}
"""The states each bulk action applies to (see ``sqlxmq_py.admin._bulk``'s docstring); a
filter's ``states`` narrow them, so a filter naming only other states matches nothing."""


class EmptyFilterError(ConfigurationError):
    """A bulk action was given a filter with no criterion; pass ``all=True`` to mean every
    job."""

    __module__ = "sqlxmq_py.admin"


Age = datetime | timedelta


@dataclass(frozen=True, kw_only=True)
class JobFilter:
    """Which jobs a bulk action takes: those matching every criterion given.

    Args:
        states: job states (names or :class:`JobState`), narrowing the action's own states.
        channel_name, name, job_key: exact values.
        error: text found anywhere in the job's last error (case-insensitive; ``%`` and ``_``
            match themselves).
        older_than, newer_than: created before / at or after this time (timezone-aware
            datetime) or this age (a timedelta back from the database's now()).
        all: required when no other criterion is given, to mean every job.

    Raises:
        EmptyFilterError: no criterion and not ``all``.
        ConfigurationError: an invalid value.
    """

    states: Sequence[JobState | StateName] | None = None
    channel_name: str | None = None
    name: str | None = None
    job_key: str | None = None
    error: str | None = None
    older_than: Age | None = None
    newer_than: Age | None = None
    all: bool = False

    def __post_init__(self) -> None:
        if self.states is not None:
            if isinstance(self.states, str):
                raise ConfigurationError("states must be a list of states, not one str")
            named = [to_state(s) for s in self.states]
            unknown = [s for s, n in zip(self.states, named, strict=True) if n is None]
            if unknown:
                known = ", ".join(JobState)
                raise ConfigurationError(f"unknown job states {unknown}; known: {known}")
            object.__setattr__(self, "states", tuple(s for s in named if s is not None))
        for option in ("channel_name", "name", "job_key", "error"):
            value = getattr(self, option)
            if value is not None:
                check_text(option, value)
        for option in ("older_than", "newer_than"):
            value = getattr(self, option)
            if (
                value is not None
                and not isinstance(value, timedelta)
                and not (isinstance(value, datetime) and value.tzinfo is not None)
            ):
                raise ConfigurationError(
                    f"{option} must be a timedelta (an age) or a timezone-aware datetime, "
                    f"got {value!r}"
                )
        if not self.all and self.empty:
            raise EmptyFilterError(
                "a bulk action needs at least one criterion (states, channel_name, name, "
                "job_key, error, older_than, newer_than); pass all=True to mean every job"
            )

    @property
    def empty(self) -> bool:
        """Whether no criterion is set."""
        return (
            self.states is None
            and self.channel_name is None
            and self.name is None
            and self.job_key is None
            and self.error is None
            and self.older_than is None
            and self.newer_than is None
        )


def like_pattern(text: str) -> str:
    """An ILIKE pattern that finds ``text`` anywhere, its ``%``, ``_`` and ``\\`` literal."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


Walk = Literal["key", "name", "channel", "state"]
"""The index the bulk statements walk (see them in queries.sql)."""


def walk_for(job_filter: JobFilter) -> Walk:
    """The index walk that serves a filter (pure): its job key (one job at most), else its
    name, else its channel, else its states (a bulk action always has some)."""
    if job_filter.job_key is not None:
        return "key"
    if job_filter.name is not None:
        return "name"
    if job_filter.channel_name is not None:
        return "channel"
    return "state"


def filter_params(job_filter: JobFilter, action: BulkAction | None) -> dict[str, object]:
    """The statements' parameters for a filter, narrowed to an action's states (pure)."""
    if not isinstance(job_filter, JobFilter):
        raise ConfigurationError(f"expected a JobFilter, got {job_filter!r}")
    wanted = set(JobState if action is None else ACTION_STATES[action])
    if job_filter.states is not None:
        wanted &= {s for s in map(to_state, job_filter.states) if s is not None}
    older, newer = job_filter.older_than, job_filter.newer_than
    return {
        "labels": sorted({code for state in wanted for code in state.codes}),
        "history_states": sorted(state.value for state in wanted if state.kept),
        "channel_name": job_filter.channel_name,
        "name": job_filter.name,
        "job_key": job_filter.job_key,
        "error": None if job_filter.error is None else like_pattern(job_filter.error),
        "older_at": older if isinstance(older, datetime) else None,
        "older_age": older if isinstance(older, timedelta) else None,
        "newer_at": newer if isinstance(newer, datetime) else None,
        "newer_age": newer if isinstance(newer, timedelta) else None,
        "walk": walk_for(job_filter),
    }
