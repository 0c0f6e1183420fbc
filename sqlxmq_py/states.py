"""A job's states: the one vocabulary of the README, the CLI, the API and the dashboard, and
how the database's one-letter state codes map to it (the only place that knows both)."""

from __future__ import annotations

import enum
from typing import Literal, TypeAlias

__all__ = ["CODES", "JOB_STATES", "LABELS", "JobState", "StateName", "state_of", "to_state"]


class JobState(enum.StrEnum):
    """Where a job is. A member is its name as a string (``JobState.READY == "ready"``), so it
    prints, serialises and compares as the word; :attr:`codes` are its database codes.

    - ``uncommitted``: spawned two-phase, not yet committed (``set_commit_interval``);
    - ``scheduled``: waiting for its run time;
    - ``waiting``: behind an earlier job of its ordered chain, for parent jobs, or for a runner
      that knows its name;
    - ``ready``: may run now; ``running``: a runner holds it;
    - ``retrying``: an attempt failed, the next waits for its backoff;
    - ``failed``: no attempts left, kept with its error;
    - ``completed``, ``cancelled``: finished and kept in the history.
    """

    UNCOMMITTED = "uncommitted"
    SCHEDULED = "scheduled"
    WAITING = "waiting"
    READY = "ready"
    RUNNING = "running"
    RETRYING = "retrying"
    FAILED = "failed"
    COMPLETED = "completed"
    CANCELLED = "cancelled"

    @property
    def codes(self) -> tuple[str, ...]:
        """The labels of ``mq_jobs_admin_idx`` (migration 0004) that make up this state: its
        ``mq_jobs.state`` codes, and ``t`` for retrying; none for the kept states, which live
        in ``mq_history`` under their own names."""
        return CODES[self]

    @property
    def kept(self) -> bool:
        """Whether jobs in this state are finished ones, kept in ``mq_history``."""
        return not CODES[self]


StateName: TypeAlias = Literal[
    "uncommitted",
    "scheduled",
    "waiting",
    "ready",
    "running",
    "retrying",
    "failed",
    "completed",
    "cancelled",
]
"""A state written as its name: what callers may pass wherever a :class:`JobState` is taken
(a test checks that these are exactly the members' values)."""

JOB_STATES: tuple[JobState, ...] = tuple(JobState)

LABELS: dict[str, JobState] = {
    "u": JobState.UNCOMMITTED,
    "s": JobState.SCHEDULED,
    "t": JobState.RETRYING,  # not a stored code: a scheduled job that already failed an attempt
    "b": JobState.WAITING,  # behind an earlier job of its ordered chain
    "w": JobState.WAITING,  # for parent jobs
    "n": JobState.WAITING,  # for a runner that knows its name
    "r": JobState.READY,
    "l": JobState.RUNNING,
    "f": JobState.FAILED,
}
"""The database's state codes (mq_jobs.state, and mq_jobs_admin_idx's labels) by state."""

CODES: dict[JobState, tuple[str, ...]] = {
    state: tuple(code for code, named in LABELS.items() if named is state) for state in JobState
}
"""The codes that make up each state (none for the kept states, which live in mq_history)."""

READY_CODE = "r"
"""The code of a job that may run now: what a plain job that is neither delayed nor two-phase
is written with (``COPY``)."""


def state_of(code: str, attempts: int) -> JobState:
    """The state of a job row with this code (or a kept job's state, as stored) and attempts."""
    if code == "s" and attempts > 0:
        return JobState.RETRYING
    found = LABELS.get(code)
    if found is not None:
        return found
    if code == "completed":
        return JobState.COMPLETED
    if code == "cancelled":
        return JobState.CANCELLED
    raise ValueError(f"unknown job state code {code!r}")


def to_state(value: object) -> JobState | None:
    """The state a caller named (a :class:`JobState` or its name), or ``None`` if it names
    none."""
    if isinstance(value, str):
        try:
            return JobState(value)
        except ValueError:
            return None
    return None
