"""A job's states: the one vocabulary of the README, the CLI, the API and the dashboard, and
how the database's one-letter state codes map to it (the only place that knows both)."""

from __future__ import annotations

from typing import Literal, TypeAlias, get_args

__all__ = ["JOB_STATES", "LABELS", "JobState", "state_of"]

JobState: TypeAlias = Literal[
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
"""Where a job is:

- ``uncommitted``: spawned two-phase, not yet committed (``set_commit_interval``);
- ``scheduled``: waiting for its run time;
- ``waiting``: behind an earlier job of its ordered chain, for parent jobs, or for a runner
  that knows its name;
- ``ready``: may run now; ``running``: a runner holds it;
- ``retrying``: an attempt failed, the next waits for its backoff;
- ``failed``: no attempts left, kept with its error;
- ``completed``, ``cancelled``: finished and kept in the history.
"""

JOB_STATES: tuple[JobState, ...] = get_args(JobState)

LABELS: dict[str, JobState] = {
    "u": "uncommitted",
    "s": "scheduled",
    "t": "retrying",  # not a stored code: a scheduled job that already failed an attempt
    "b": "waiting",  # behind an earlier job of its ordered chain
    "w": "waiting",  # for parent jobs
    "n": "waiting",  # for a runner that knows its name
    "r": "ready",
    "l": "running",
    "f": "failed",
}
"""The database's state codes (mq_jobs.state, and mq_jobs_admin_idx's labels) by state."""

CODES: dict[JobState, tuple[str, ...]] = {
    state: tuple(code for code, named in LABELS.items() if named == state) for state in JOB_STATES
}
"""The codes that make up each state (none for the kept states, which live in mq_history)."""


def state_of(code: str, attempts: int) -> JobState:
    """The state of a job row with this code (or a kept job's state, as stored) and attempts."""
    if code == "s" and attempts > 0:
        return "retrying"
    found = LABELS.get(code)
    if found is not None:
        return found
    if code in ("completed", "cancelled"):
        return code  # type: ignore[return-value]
    raise ValueError(f"unknown job state code {code!r}")
