"""The lease loop and the promoter: when to lease, how many, and making scheduled jobs ready.

Every decision is the pure :class:`~._pacing.Pacer`'s; this module only does what it answers:
lease, start an attempt per row, announce the runner idle or busy, wait for news. News comes
from the listener (a notification), the attempts (a freed slot) and the promoter (jobs made
ready), each through one method here that tells the pacer and wakes the loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from .._aio import wait_event
from .._text import error_summary
from ..sql import query
from ._attempts import Attempts
from ._connection import DedicatedConnection
from ._execution import runner_identity
from ._health import FailureSpell
from ._hookset import HookSet
from ._keepalive import LeaseKeeper
from ._leasing import PROMOTE_BATCH, Leaser
from ._listener import CONTROL_PAYLOAD, FREED_PAYLOAD, SCHEDULED_PAYLOAD
from ._pacing import Pacer, occupied, promotion_delay, promotion_retry_delay

__all__ = ["LeaseLoop"]


class LeaseLoop:
    """Leases jobs whenever the pacer says so, and promotes scheduled jobs."""

    def __init__(
        self,
        *,
        pacer: Pacer,
        leaser: Leaser,
        done: DedicatedConnection,
        hooks: HookSet,
        poll_interval: float,
        log: Any,
    ) -> None:
        """Leases on ``leaser``; hands back rows that could not start on ``done``."""
        self._pacer = pacer
        self._leaser = leaser
        self._done = done
        self._hooks = hooks
        self._poll_interval = poll_interval
        self._log = log
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._promote_now = asyncio.Event()
        self._stopping = False
        self._reread_limits = False
        self._poll_health = FailureSpell()
        self._attempts: Attempts | None = None
        self._freed_while_polling: set[str] = set()

    # --- news ---

    def slot_freed(self, channel_name: str) -> None:
        """An attempt settled."""
        if self._leaser.limits.get(channel_name):
            # its channel's limit may have been all that held other jobs back (a paused
            # channel's, 0, holds them whatever runs)
            self._room_news((channel_name,))
        self._wake.set()

    def function_returned(self) -> None:
        """A job function returned: its slot is free, but a limited channel's count in the
        database still holds the job until its outcome is written (``slot_freed`` then), so
        this only wakes the loop and tells the pacer nothing new."""
        self._wake.set()

    def _room_news(self, channels: Iterable[str]) -> None:
        """A slot of one of these limited channels may be free. A lease sent before the news
        came may already have taken it: then the runner holds as many of the channel's jobs
        as its limit allows, and leasing again would find none. Judged when no lease is
        under way (else when it answers, its jobs started)."""
        if self._pacer.polling:
            self._freed_while_polling.update(channels)
        elif any(self._has_room(channel) for channel in channels):
            self._pacer.notified()

    def _has_room(self, channel_name: str) -> bool:
        """Whether this runner holds fewer of the limited channel's jobs than its limit."""
        limit = self._leaser.limits.get(channel_name, 0)
        return self._attempts is None or self._attempts.held_in(channel_name) < limit

    def notified(self, payload: str) -> None:
        """The listener heard a notification."""
        if payload == FREED_PAYLOAD:
            # some limited channel's job completed (this runner's own, often: its attempt's
            # slot_freed told it already); no news while every limited channel is full here
            limited = [channel for channel, limit in self._leaser.limits.items() if limit]
            if limited:
                self._room_news(limited)
                self._wake.set()
                return
        self._pacer.notified()
        if payload == SCHEDULED_PAYLOAD:
            self._promote_now.set()
        elif payload == CONTROL_PAYLOAD:
            # a channel was paused, resumed or limited: know it before the next lease
            self._reread_limits = True
        self._wake.set()

    def limits_loosened(self) -> None:
        """Maintenance found a channel resumed or its limit raised: its jobs may run now."""
        self._pacer.notified()
        self._wake.set()

    def listening(self) -> None:
        """The listener (re)subscribed: anything spawned, paused or limited meanwhile was not
        notified."""
        self._pacer.notified()
        self._reread_limits = True
        self._promote_now.set()
        self._wake.set()

    def set_deaf(self, deaf: bool) -> None:
        """The listener turned deaf (or hears again): the pacer polls adaptively."""
        self._pacer.set_deaf(deaf)
        self._wake.set()

    def stop(self) -> None:
        """Leases no more (the loop ends at its next turn)."""
        self._stopping = True
        self._wake.set()

    # --- leasing ---

    async def run(self, attempts: Attempts, keeper: LeaseKeeper | None) -> None:
        """Leases until stopped; each leased row starts an attempt in ``attempts``."""
        pacer = self._pacer
        self._attempts = attempts
        while not self._stopping:
            self._wake.clear()
            held = occupied(attempts.running, len(attempts), pacer.max_concurrency)
            plan = pacer.plan(self._loop.time(), held, attempts.held_bytes)
            if plan.want:
                await self._poll(attempts, keeper, plan.want, plan.max_bytes)
                continue
            await wait_event(self._wake, plan.wait)

    async def _poll(
        self, attempts: Attempts, keeper: LeaseKeeper | None, want: int, max_bytes: int
    ) -> None:
        try:
            if self._reread_limits:
                self._reread_limits = False  # news arriving while it reads asks again
                try:
                    await self._leaser.refresh_limits()
                except Exception:
                    self._reread_limits = True
                    raise
            rows, deferred = await self._leaser.lease(want, max_bytes)
        except Exception as exc:
            wait = self._pacer.failed(self._loop.time())
            self._freed_while_polling.clear()  # the retry leases whatever was freed
            error = error_summary(exc)
            if self._poll_health.failed(error):  # once per kind of failure, not per retry
                self._log.error("poll_failed", error=error, retry_in_s=wait)
            return
        if self._poll_health.succeeded():
            self._log.info("poll_restored")
        unstarted = []
        for row in rows:
            try:
                attempts.start(row)
            except Exception as exc:  # never keep a lease that is not running: hand it back
                self._log.error("job_start_failed", job_id=str(row[0]), error=error_summary(exc))
                unstarted.append(row)
        if unstarted:
            await self._done.execute(
                query("release"),
                {
                    "ids": [r[0] for r in unstarted],
                    "tokens": [r[1] for r in unstarted],
                    "by": runner_identity(),
                    "started": False,  # never ran: not an interruption
                },
            )
        if rows and keeper is not None:
            keeper.leased(min(row[6] for row in rows))
        self._log.debug("polled", leased=len(rows), wanted=want, deferred=deferred)
        if self._hooks:
            self._hooks.call("polled", len(rows), want)
        if deferred:
            # jobs made scheduled until their rate keys allow them: the promoter learns when
            self._promote_now.set()
        # a deferred job was looked at like a leased one: a lease that deferred some of what it
        # asked for says nothing of an empty queue, and leases again at once
        announce = self._pacer.polled(
            self._loop.time(), len(rows) + deferred, want, self._leaser.idle
        )
        if self._freed_while_polling:
            freed, self._freed_while_polling = self._freed_while_polling, set()
            if any(self._has_room(channel) for channel in freed):
                self._pacer.notified()
        if announce is not None:
            try:
                await self._leaser.set_idle(announce)
            except Exception as exc:
                self._log.warning("announce_failed", error=error_summary(exc))

    # --- scheduled jobs ---

    async def promote(self) -> None:
        """Makes due scheduled jobs ready, apart from the lease path: when the next one of the
        runner's channels is due, when a delayed job is spawned, and at least every poll
        interval; one runner at a time (the others skip while one is promoting)."""
        spell = FailureSpell()
        while True:
            self._promote_now.clear()
            try:
                promoted, wait = await self._leaser.promote()
                spell.succeeded()
            except Exception as exc:
                if spell.failed():
                    self._log.warning("promote_failed", error=error_summary(exc))
                delay = promotion_retry_delay(spell.failures)
            else:
                if promoted:
                    self._pacer.notified()
                    self._wake.set()
                full = promoted is not None and promoted >= PROMOTE_BATCH
                delay = promotion_delay(full, wait, self._poll_interval)
            if delay > 0:
                await wait_event(self._promote_now, delay)
