"""Lease renewal in a thread of its own, on a connection of its own.

Renewals must not depend on the event loop: a job that blocks the loop, or a pool with no free
connection, would otherwise let leases expire under running jobs, which then run twice. One
statement renews every lease the runner holds.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

import psycopg

from .._logging import logger
from ..sql import query
from ._connection import connect_kwargs
from ._health import FailureSpell, backoff

__all__ = ["HeldLease", "LeaseKeeper", "renew_interval", "renew_retry_wait"]

HeldLease = tuple[uuid.UUID, uuid.UUID, timedelta]
"""(job id, lease token, lease length) of a lease the runner holds."""

_MIN_INTERVAL = 0.2
_RETRY_FIRST = 0.1
_RETRY_MAX = 5.0


def renew_interval(leases: list[HeldLease], default_lease: timedelta) -> float:
    """Seconds between renewals: a third of the shortest lease held, so two may fail in a row."""
    shortest = min((lease for _, _, lease in leases), default=default_lease)
    return max(_MIN_INTERVAL, min(shortest, default_lease).total_seconds() / 3)


def renew_retry_wait(failures: int) -> float:
    """Seconds until the next renewal after ``failures`` failed ones in a row (100 ms doubling
    to 5 s; never longer than the renewal interval)."""
    return backoff(failures, first=_RETRY_FIRST, most=_RETRY_MAX)


class LeaseKeeper:
    """Renews the runner's leases every third of a lease, from its own thread."""

    def __init__(
        self,
        conninfo: str,
        kwargs: Mapping[str, Any],
        default_lease: timedelta,
        held: Callable[[], list[HeldLease]],
        on_report: Callable[[list[uuid.UUID], list[uuid.UUID]], None],
        on_renewed: Callable[[int, int], None] | None = None,
    ) -> None:
        """``held()`` lists the leases to renew (called from the thread: it must be thread-safe);
        ``on_report(lost, cancelled)`` is called from the thread with the tokens of the leases
        found gone and of the jobs someone asked to cancel."""
        self._conninfo = conninfo
        self._kwargs = connect_kwargs(kwargs)
        self._default_lease = default_lease
        self._held = held
        self._on_report = on_report
        self._on_renewed = on_renewed
        self._stopping = False
        self._wake = threading.Event()
        self._wait = renew_interval([], default_lease)
        self._thread = threading.Thread(target=self._run, name="sqlxmq-lease-keeper", daemon=True)
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = None
        self._spell = FailureSpell()

    def start(self) -> None:
        """Starts the thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stops the thread and waits for it."""
        self._stopping = True
        self._wake.set()
        self._thread.join()

    def leased(self, shortest: timedelta) -> None:
        """Tells the keeper that leases as short as ``shortest`` are now held, so that it
        renews them in time even if it was sleeping for longer ones."""
        if shortest.total_seconds() / 3 < self._wait:
            self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait(self._wait)
            self._wake.clear()
            if self._stopping:
                break
            leases = self._held()
            wait = renew_interval(leases, self._default_lease)
            self._wait = wait
            if not leases:
                continue
            try:
                self._renew(leases)
            except psycopg.Error as exc:
                # one warning when failures start, debug lines until they end
                log = logger.warning if self._spell.failed() else logger.debug
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None
                self._wait = min(wait, renew_retry_wait(self._spell.failures))
                log("lease_renewal_failed", error=str(exc).strip(), retry_in_s=self._wait)
        if self._conn is not None:
            self._conn.close()

    def _renew(self, leases: list[HeldLease]) -> None:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.Connection.connect(self._conninfo, **self._kwargs)
        with self._conn.cursor() as cur:
            cur.execute(
                query("renew"),
                {
                    "ids": [job_id for job_id, _, _ in leases],
                    "tokens": [token for _, token, _ in leases],
                    "default_lease": self._default_lease,
                },
            )
            reports = cur.fetchall()
        if self._spell.succeeded():
            logger.info("lease_renewal_restored")
        lost = [token for token, why in reports if why == "lost"]
        cancelled = [token for token, why in reports if why == "cancel"]
        logger.debug("leases_renewed", count=len(leases) - len(lost))
        if self._on_renewed is not None:
            self._on_renewed(len(leases) - len(lost), len(lost))
        if reports:
            self._on_report(lost, cancelled)
