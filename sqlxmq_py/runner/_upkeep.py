"""The runner's upkeep loops: maintenance (expired leases, cron ticks, parked jobs, counters,
the heartbeat) and the listener's health check. Their decisions (when to warn, when to say
restored, whether the listener went deaf) are the pure state objects of ``_health``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from .._aio import wait_event
from .._text import error_summary
from ..sql import query
from ._connection import DedicatedConnection
from ._health import FailureSpell, Hearing
from ._leasing import Leaser
from ._listener import Listener
from ._maintenance import AttemptStats, maintain

__all__ = [
    "HEARTBEAT_EVERY",
    "LISTEN_CHECK_EVERY",
    "LISTEN_CHECK_TIMEOUT",
    "listen_check_loop",
    "maintenance_loop",
]

HEARTBEAT_EVERY = 10.0
"""Seconds between two renewals of the runner's announcement (its heartbeat)."""
LISTEN_CHECK_EVERY = 30.0
"""Seconds between two checks that notifications reach the listener."""
LISTEN_CHECK_TIMEOUT = 2.0
"""Seconds a check waits for its own notification before it calls the listener deaf."""


async def maintenance_loop(
    *,
    interval: float,
    leaser: Leaser,
    upkeep: DedicatedConnection,
    done: DedicatedConnection,
    names: frozenset[str],
    stats: AttemptStats,
    on_loosened: Callable[[], None],
    log: Any,
) -> None:
    """Every ``interval`` seconds: re-read channel limits and pauses (``on_loosened()`` when a
    channel may run more jobs than before: a resume or a raised limit whose notification did
    not arrive), run the shared upkeep, unpark the jobs of ``names``, add the attempt
    counters, and now and then renew the announcement."""
    loop = asyncio.get_running_loop()
    next_heartbeat = loop.time() + HEARTBEAT_EVERY
    spell = FailureSpell()
    while True:
        await asyncio.sleep(interval)
        try:
            if await leaser.refresh_limits():
                on_loosened()
            await maintain(upkeep, log)
            # parked jobs of the names this runner knows may run now
            await upkeep.execute(query("unpark"), {"names": sorted(names)})
            await stats.flush(done)
            if loop.time() >= next_heartbeat and leaser.idle is not None:
                await leaser.set_idle(leaser.idle)
                next_heartbeat = loop.time() + HEARTBEAT_EVERY
        except Exception as exc:
            if spell.failed():
                log.warning("maintenance_failed", error=error_summary(exc))
        else:
            if spell.succeeded():
                log.info("maintenance_restored")


async def listen_check_loop(
    *,
    listener: Listener,
    listening: asyncio.Event,
    send_ping: Callable[[str], Awaitable[object]],
    on_deaf: Callable[[bool], None],
    log: Any,
) -> None:
    """Checks now and then (and after each reconnection, when ``listening`` is set) that
    notifications arrive; tells ``on_deaf`` when the listener turns deaf or hears again (a
    transaction pooler between the runner and PostgreSQL, say: the runner then polls
    adaptively and stops announcing itself idle, so nobody notifies it into the void)."""
    hearing = Hearing()
    while True:
        await listening.wait()
        listening.clear()
        try:
            heard = await listener.probe(send_ping, LISTEN_CHECK_TIMEOUT)
        except Exception as exc:
            log.debug("listen_check_failed", error=error_summary(exc))
            heard = False
        deaf = hearing.checked(heard)
        if deaf is not None:
            on_deaf(deaf)
            if deaf:
                log.warning(
                    "listener_deaf",
                    detail="notifications sent to this runner do not arrive (a transaction "
                    "pooler?): it polls instead; set_listen_dsn() can name a direct "
                    "connection for LISTEN",
                )
            else:
                log.info("listener_hears")
        await wait_event(listening, LISTEN_CHECK_EVERY)
        listening.set()
