"""When a runner polls, for how many jobs, and when it promotes scheduled jobs: pure decisions.

The runner's loops tell these objects what happened (with the loop's clock) and do what they
answer; unit tests drive them without a database or an event loop.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._health import backoff

__all__ = [
    "FAILURE_WAIT_MAX",
    "Pacer",
    "Plan",
    "occupied",
    "promotion_delay",
    "promotion_retry_delay",
]

FAILURE_WAIT_FIRST = 0.05
FAILURE_WAIT_MAX = 5.0
"""After a poll fails: wait 50 ms, doubling to 5 s, until one succeeds."""

DEAF_WAIT_FIRST = 0.05
DEAF_WAIT_MAX = 1.0
"""Without notifications (a listener that cannot hear): poll again after 50 ms when the last
poll found work, doubling to 1 s (or the poll interval, if shorter) while it finds none."""

PROMOTE_RETRY_FIRST = 0.1
PROMOTE_RETRY_MAX = 5.0
"""After a promotion fails: wait 100 ms, doubling to 5 s, until one succeeds."""

PROMOTE_GAP = 0.02
"""The least time between two promotions of scheduled jobs: a backlog that keeps coming due is
promoted in batches, 50 statements a second at most, not before every lease."""


@dataclass(frozen=True, slots=True)
class Plan:
    """What the lease loop does next: lease up to ``want`` jobs holding at most ``max_bytes``
    of payload (``want`` 0: lease nothing), else wait up to ``wait`` seconds for news (None:
    until woken, by a freed slot or a notification)."""

    want: int
    max_bytes: int
    wait: float | None


@dataclass(slots=True)
class Pacer:
    """The lease loop's decisions for one runner."""

    min_concurrency: int
    max_concurrency: int
    poll_interval: float
    max_bytes: int
    pending: bool = True
    """There may be work: a notification came, the last batch was full, or nothing is known."""
    deadline: float = 0.0
    """Poll by then even without news."""
    failures: int = 0
    deaf: bool = False
    """The listener cannot hear notifications: poll adaptively instead."""
    deaf_wait: float = DEAF_WAIT_FIRST
    polling: bool = False
    """A lease statement planned by :meth:`plan` has not been answered yet."""
    news_while_polling: bool = False
    """A notification came while it ran: it may announce a job committed after the
    statement's snapshot, which its answer cannot show."""

    def plan(self, now: float, held: int, held_bytes: int) -> Plan:
        """What to do, holding ``held`` leases with ``held_bytes`` of payload."""
        if held >= self.min_concurrency or held_bytes >= self.max_bytes:
            return Plan(0, 0, None)  # a freed slot wakes the loop
        if now >= self.deadline and not self.failures:
            self.pending = True
        if self.pending:
            self.polling, self.news_while_polling = True, False
            return Plan(self.max_concurrency - held, self.max_bytes - held_bytes, None)
        return Plan(0, 0, max(0.0, self.deadline - now))

    def polled(self, now: float, leased: int, wanted: int, idle: bool | None) -> bool | None:
        """Records a poll that leased ``leased`` of ``wanted`` jobs; ``idle`` is what the runner
        has announced (None: nothing yet). Returns the idleness to announce now, if it changes:
        idle runners are woken by spawns, busy ones are not (and cost producers nothing)."""
        news, self.polling, self.news_while_polling = self.news_while_polling, False, False
        announce = self._after_poll(now, leased, wanted, idle)
        if news:
            self.pending = True  # the poll's snapshot may predate what was announced
        return announce

    def _after_poll(self, now: float, leased: int, wanted: int, idle: bool | None) -> bool | None:
        self.failures = 0
        if self.deaf:
            self.deaf_wait = (
                DEAF_WAIT_FIRST
                if leased
                else min(self.deaf_wait * 2, DEAF_WAIT_MAX, self.poll_interval)
            )
        self.deadline = now + (self.deaf_wait if self.deaf else self.poll_interval)
        if leased >= wanted:
            self.pending = True  # a full batch: more may be waiting
            return False if idle is not False else None
        if self.deaf:
            # nobody can wake it: no spawn should send a notification into the void
            self.pending = False
            return False if idle is not False else None
        if idle is not True:
            # poll once more after announcing: a spawn that looked before the announcement did
            # not notify, but is visible to that poll
            self.pending = True
            return True
        self.pending = False
        return None

    def failed(self, now: float) -> float:
        """Records a failed poll; returns how long to wait before the next."""
        self.failures += 1
        self.polling = self.news_while_polling = False
        wait = backoff(self.failures, first=FAILURE_WAIT_FIRST, most=FAILURE_WAIT_MAX)
        self.pending = False
        self.deadline = now + wait
        return wait

    def notified(self) -> None:
        """There may be work (a notification, a freed slot of a limited channel, a promotion)."""
        if not self.failures:
            self.pending = True
            if self.polling:
                self.news_while_polling = True

    def set_deaf(self, deaf: bool) -> None:
        """The listener lost (or regained) its ability to hear notifications."""
        self.deaf = deaf
        self.deaf_wait = DEAF_WAIT_FIRST
        self.pending = True


def promotion_delay(full: bool, wait: float | None, interval: float) -> float:
    """Seconds until the next promotion of scheduled jobs, after one that was ``full`` (it hit
    its batch size: more are due), with the next scheduled job of the runner's channels due in
    ``wait`` seconds (None: there is none), polling at least every ``interval``."""
    if full:
        return 0.0
    if wait is None:
        return interval
    return min(interval, max(PROMOTE_GAP, wait))


def promotion_retry_delay(failures: int) -> float:
    """Seconds until the next promotion after ``failures`` failed ones in a row."""
    return backoff(failures, first=PROMOTE_RETRY_FIRST, most=PROMOTE_RETRY_MAX, cap=9)


def occupied(running: int, held: int, max_concurrency: int) -> int:
    """The slots taken, for :meth:`Pacer.plan`: the job functions running. An attempt whose
    function has returned and whose outcome is being written takes no slot, so that the next
    lease overlaps the completion's round trip instead of waiting for it; but the runner never
    holds more than twice ``max_concurrency`` leases, however slowly outcomes are written."""
    return max(running, held - max_concurrency)
