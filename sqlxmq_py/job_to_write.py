"""A job to write: every option of one job about to be spawned, as one frozen value.

``JobBuilder.to_write()`` makes one after validating each option; the statements that spawn
jobs (``INSERT``, ``mq_insert``, ``COPY``) are built from these values only, never from a
builder. The rule that decides the state a new job starts in, as far as the job alone decides
it, is :func:`initial_state`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, TypeAlias

from ._validate import MAX_KEY_BYTES, Duration, check_name, to_timedelta
from .errors import ConfigurationError
from .states import JobState

__all__ = ["KEY_MODES", "JobKeyMode", "JobToWrite", "check_job_key", "initial_state", "is_plain"]

JobKeyMode: TypeAlias = Literal["replace", "preserve_run_at", "unsafe_dedupe"]
"""What spawning a job whose key is taken by a waiting job does (graphile-worker's modes)."""

KEY_MODES: tuple[JobKeyMode, ...] = ("replace", "preserve_run_at", "unsafe_dedupe")


def check_job_key(
    job_key: str | None, mode: JobKeyMode, throttle: Duration | None
) -> tuple[str | None, JobKeyMode, timedelta | None]:
    """A job key, its mode and its throttle window (``JobBuilder.set_job_key``), checked."""
    if job_key is not None:
        check_name("job_key", job_key, MAX_KEY_BYTES)
    if mode not in KEY_MODES:
        raise ConfigurationError(f"mode must be one of {', '.join(KEY_MODES)}, got {mode!r}")
    window = None if throttle is None else to_timedelta("throttle", throttle, allow_zero=False)
    if window is not None and job_key is None:
        raise ConfigurationError("throttle needs a job_key: the window is per key")
    return job_key, mode, window


@dataclass(frozen=True, kw_only=True)
class JobToWrite:
    """One job about to be spawned, its options validated (``JobBuilder.to_write()``).

    The fields are the builder's options under their column names; see the ``JobBuilder``
    setter of each for its meaning.
    """

    id: uuid.UUID | None
    """The id set with ``set_id``; ``None``: a new UUIDv7 is given when it is written."""
    name: str
    channel_name: str
    channel_args: str
    payload_json: str | None
    """The JSON payload, already encoded."""
    payload_bytes: bytes | None
    delay: timedelta
    run_at: datetime | None
    """When set, the run time (timezone-aware); ``delay`` is then zero."""
    commit_interval: timedelta | None
    """Set for a two-phase job: it runs only once committed."""
    max_attempts: int
    retry_backoff: timedelta
    lease: timedelta | None
    priority: int
    retain_for: timedelta | None
    dead_letter: str | None
    dead_letter_channel: str | None
    job_key: str | None
    job_key_mode: JobKeyMode
    throttle: timedelta | None
    ordered: bool
    after: tuple[uuid.UUID, ...]
    """The parents' ids (a continuation)."""
    run_after_failed_parents: bool
    headers: Mapping[str, str] | None
    """The headers, or ``None`` for none (never mutated once here)."""
    rate_keys: tuple[str, ...] = ()
    """The rate keys (``add_rate_key``): none for almost every job."""

    @classmethod
    def _of(cls, fields: dict[str, Any]) -> JobToWrite:
        """A value from a complete, validated field dictionary (``JobBuilder.to_write``): one
        C-level dictionary copy instead of 23 keyword arguments, as spawning is hot."""
        job = object.__new__(cls)
        job.__dict__.update(fields)
        return job


def is_plain(job: JobToWrite) -> bool:
    """No key, no parents, not ordered, no rate keys: one plain statement writes it, no
    ``mq_insert``."""
    return job.job_key is None and not job.after and not job.ordered and not job.rate_keys


def initial_state(job: JobToWrite) -> JobState | None:
    """The state a new job starts in, as far as the job alone decides it; ``None`` when the
    database decides (its clock, for a delay or run time; unfinished parents; an earlier job
    of its ordered chain; a waiting job holding its key). The rule itself is the database's
    ``mq_new_state`` (migration 0017); this mirror only picks the jobs COPY may write, and
    ``tests/test_initial_state.py`` holds it to that function.

    - two-phase (``commit_interval``): ``uncommitted``, until committed;
    - plain, neither delayed nor timed: ``ready``. ``COPY`` writes only such jobs, with this
      state's code, and the SQL of the ``insert`` statements starts them in the same state.
    """
    if job.commit_interval is not None:
        return JobState.UNCOMMITTED
    if is_plain(job) and not job.delay and job.run_at is None:
        return JobState.READY
    return None
