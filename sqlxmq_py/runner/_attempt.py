"""One attempt's state, and the pure rules that turn what the database answered into its
settled outcome and its one log line.

The attempt coroutine (``_attempts``) awaits the outcome's write and hands the answer to these
functions; whatever path an attempt takes, it ends in one :class:`Settled` value, logged,
counted and told to the hooks in one place.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from .._text import error_summary
from ..current_job import LeasedJob
from ..hooks import JobOutcome

if TYPE_CHECKING:
    from ._jobs import RunnableJob

__all__ = [
    "COMPLETED",
    "MISSING_PAYLOAD",
    "Attempt",
    "CompletionRolledBack",
    "Ended",
    "Settled",
    "UnknownNames",
    "failure",
    "hand_back",
    "leased_job",
    "lost",
    "lost_if_gone",
    "park_reason",
    "parking",
]

MISSING_PAYLOAD = "sqlxmq:missing-payload"
"""The name the lease gives a job whose mq_payloads row is missing."""

Ended = tuple[Literal["returned", "raised", "interrupted", "unknown"], Any]
"""How the job function ended: returned (its value), raised (the exception), interrupted by
``stop()``, or never called (its name is unknown here)."""

Level = Literal["debug", "info", "warning", "error"]

WARN_UNKNOWN_EVERY = 600.0
"""Seconds between two warnings about one unknown job name."""

_FAILED_OUTCOMES: dict[str | None, JobOutcome] = {
    "r": "retrying",
    "s": "retrying",
    "f": "failed",
    "c": "cancelled",
    None: "lease_lost",
}


class CompletionRolledBack(Exception):
    """The job completed itself inside a transaction that did not commit, then returned."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Settled:
    """An attempt's settled outcome and the one line logged for it."""

    outcome: JobOutcome
    event: str | None = None
    """The log event of the finished job (None: nothing more to say)."""
    level: Level = "warning"
    keys: Mapping[str, object] = field(default_factory=dict)
    """Keys of the log line, before the job's own."""
    timed: bool = False
    """The line carries the attempt's ``duration_s``."""
    error: BaseException | None = None
    """The failure the registry's error handler is told of, once the outcome is settled."""


COMPLETED = Settled(outcome="completed", event="job_completed", level="debug", timed=True)


@dataclass(slots=True, eq=False)
class Attempt:
    """One lease the runner holds, from the lease until its outcome is written."""

    job: LeasedJob
    named: RunnableJob | None
    started: float
    task: asyncio.Task[None] | None = None
    running: bool = True
    """The job function has not returned (nor been abandoned)."""
    interrupted: bool = False
    """``stop()``'s timeout passed while it ran: an async job is cancelled, a thread job sees
    ``current_job.stopping``; if it then stops unfinished, its lease goes back without using up
    an attempt."""
    cancelling: bool = False
    """A cancel request cancelled its task."""
    abandoned: bool = False
    """It ignored its cancellation past the grace period and was given up."""
    settled: bool = False
    watchdog: asyncio.TimerHandle | None = None
    finished: float | None = None

    @property
    def cancellable(self) -> bool:
        """Whether the job can be stopped: it runs on the loop (its task is cancelled) or in a
        worker process (killed), rather than in a thread."""
        named = self.named
        return named is None or named.is_async or named.options.isolation == "process"


def leased_job(row: tuple[Any, ...]) -> LeasedJob:
    """The job of a row of the lease statement."""
    (job_id, token, attempt, max_attempts, cname, cargs, lease, name, pjson, pbytes, backoff,
     key, retain_for, headers, size) = row  # fmt: skip
    return LeasedJob(
        id=job_id,
        token=token,
        name=name,
        attempt=attempt,
        max_attempts=max_attempts,
        channel_name=cname,
        channel_args=cargs,
        lease=lease,
        retry_backoff=backoff,
        payload_json=pjson,
        payload_bytes=pbytes,
        job_key=key,
        retain_for=retain_for,
        headers=headers,
        payload_size=size,
    )


def lost(action: str, **keys: object) -> Settled:
    """The lease was gone when ``action`` was written (or found gone before)."""
    return Settled(outcome="lease_lost", event="lease_lost", keys={"action": action, **keys})


def failure(job: LeasedJob, state: str | None, exc: BaseException, text: str) -> Settled:
    """A failed attempt, written with ``text`` as its error: ``state`` is the job's new state
    ('r' or 's': a retry is due; 'f': failed for good; 'c': cancelled; None: the lease was
    gone)."""
    outcome = _FAILED_OUTCOMES.get(state, "retrying")
    summary = error_summary(exc)
    if outcome == "lease_lost":
        keys = {"action": "fail", "error": summary}
        return Settled(outcome=outcome, event="lease_lost", keys=keys, error=exc)
    if outcome == "cancelled":
        return Settled(outcome=outcome, event="job_cancelled", keys={"error": summary}, error=exc)
    final = outcome == "failed"
    details: dict[str, object] = {"final": final, "error": summary}
    if final:
        details["max_attempts"] = job.max_attempts
    details["traceback"] = text
    level: Level = "error" if final else "warning"
    return Settled(outcome=outcome, event="job_failed", level=level, keys=details, error=exc)


INTERRUPTED_WHY = "runner stopping"
"""Why an attempt was interrupted, as its log line says."""


def hand_back(state: str | None) -> Settled:
    """A lease handed back at ``stop()``: 'interrupted' (the attempt is not counted and the job
    is ready at once), 'cancelled' (someone had asked), or None (the lease was gone)."""
    if state in ("interrupted", "released"):  # 'released': as mq_release said before 0009
        return Settled(
            outcome="interrupted",
            event="job_interrupted",
            level="info",  # expected on every deploy: nothing failed
            keys={"why": INTERRUPTED_WHY, "detail": "handed back: ready at once, attempt not used"},
        )
    if state == "cancelled":
        return Settled(
            outcome="cancelled", event="job_cancelled", keys={"error": "cancelled while running"}
        )
    return lost("release")


def parking(state: str | None) -> Settled:
    """A job of an unknown name parked: 'parked', 'cancelled' (someone had asked), or None
    (the lease was gone)."""
    if state == "parked":
        return Settled(outcome="parked")
    if state == "cancelled":
        return Settled(
            outcome="cancelled", event="job_cancelled", keys={"error": "cancelled while parked"}
        )
    return lost("park")


def lost_if_gone(job: LeasedJob, settled: Settled) -> Settled:
    """Marks the job's lease lost (``current_job.lease_lost``) if the write of its completion,
    parking or hand-back found it gone. (A failed attempt whose write found it gone is not
    marked: its error handler sees the job as the failure left it.)"""
    if settled.outcome == "lease_lost":
        job.lease_lost = True
    return settled


def park_reason(name: str, known: frozenset[str]) -> str:
    """The error recorded on a job parked because this runner does not know its name."""
    names = sorted(known)
    shown = ", ".join(map(repr, names[:10])) + (", …" if len(names) > 10 else "")
    return (
        f"waiting for a runner that knows the job name {name!r} (a runner that runs "
        f"{len(names)} other jobs leased it: {shown})"
    )


@dataclass(slots=True)
class UnknownNames:
    """When to warn of a job name the runner does not know: once in a while per name."""

    warned: dict[str, float] = field(default_factory=dict)
    """Name -> when it was last warned of."""

    def warn_now(self, name: str, now: float) -> bool:
        """Whether to warn of ``name`` at ``now`` (and if so, it counts as warned)."""
        if now - self.warned.get(name, -WARN_UNKNOWN_EVERY) < WARN_UNKNOWN_EVERY:
            return False
        self.warned[name] = now
        return True
