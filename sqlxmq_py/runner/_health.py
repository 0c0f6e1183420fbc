"""Spells of failure and what to say about them: pure state the runner's loops consult.

A loop that retries (the lease loop, the promoter, maintenance, a connection that reconnects,
the listener check) must warn once when trouble starts, stay quiet (or at debug) while it lasts,
and say once that it is over. These objects decide that from what happened; the loops only log
what they answer. Unit tests drive them without a database.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "READ_ONLY_EVENT",
    "ConnectionHealth",
    "FailureSpell",
    "Hearing",
    "backoff",
]

READ_ONLY_EVENT = "database_read_only"
"""The event of a spell in which the database refuses writes (a standby after a failover)."""

Level = Literal["warning", "debug"]


def backoff(failures: int, *, first: float, most: float, cap: int = 16) -> float:
    """Seconds to wait after ``failures`` failures in a row (1 for the first): ``first``,
    doubling, never more than ``most``."""
    return min(most, first * 2.0 ** min(max(failures, 1) - 1, cap))


@dataclass(slots=True)
class FailureSpell:
    """One loop's failures: reported once per kind of failure, and once when they end."""

    current: str | None = None
    """The kind of failure going on (None: none)."""
    failures: int = 0
    """Failures in a row."""

    def failed(self, kind: str = "") -> bool:
        """Records a failure of ``kind``; True if it should be reported (the first of a spell,
        or a different kind than the last)."""
        self.failures += 1
        if kind == self.current:
            return False
        self.current = kind
        return True

    def succeeded(self) -> bool:
        """Records a success; True if it ends a spell (say it is restored)."""
        self.failures = 0
        if self.current is None:
            return False
        self.current = None
        return True


@dataclass(slots=True)
class ConnectionHealth:
    """What a reconnecting connection says about its failures.

    A read-only database (a standby after a failover) fails every write until a new primary is
    reached: its spell is reported once, under its own event, and only a successful write ends
    it (a read succeeds on a standby too).
    """

    failing: str | None = None
    """The event of the spell going on (None: healthy)."""

    def retrying(self, *, read_only: bool, connected: bool) -> tuple[str, Level]:
        """A statement failed and is retried: the event to log and its level. ``read_only``:
        the database refused a write; ``connected``: the connection still looks usable."""
        if read_only:
            event = READ_ONLY_EVENT
        else:
            event = "statement_retried" if connected else "connection_lost"
        level: Level = "warning" if self.failing is None else "debug"
        if self.failing != READ_ONLY_EVENT:
            self.failing = event
        return event, level

    def succeeded(self, *, writes: bool) -> bool:
        """A statement succeeded; True if it ends the spell (log ``connection_restored``)."""
        if self.failing is None or (not writes and self.failing == READ_ONLY_EVENT):
            return False
        self.failing = None
        return True


@dataclass(slots=True)
class Hearing:
    """Whether the runner's listener hears notifications, from the checks it makes."""

    deaf: bool = False

    def checked(self, heard: bool) -> bool | None:
        """Records a check; returns the new deafness if it changed, else None."""
        if heard != self.deaf:
            return None
        self.deaf = not heard
        return self.deaf
