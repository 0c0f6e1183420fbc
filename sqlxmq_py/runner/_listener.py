"""The runner's LISTEN connection: wakes the runner when jobs are spawned or become ready.

Notifications only save latency: the runner also polls on a timer, so a lost notification, a
broken listener or a pooler that cannot LISTEN never loses a job. After each (re)connection the
listener subscribes first and then asks the runner to poll, so nothing spawned in between is
missed.

A listener can be connected and still deaf: behind a transaction pooler (PgBouncer), LISTEN runs
on whichever server session the pooler lends, and notifications never come back. So the runner
checks it (:meth:`Listener.probe`): it sends a notification to a channel of its own and waits
for it to arrive.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import psycopg
from psycopg import sql
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from .._aio import within
from .._logging import logger
from ._connection import RECONNECT_WAIT, connect_kwargs, is_transient

__all__ = ["ALL_CHANNELS", "CONTROL_PAYLOAD", "FREED_PAYLOAD", "Listener", "notify_channel"]

ALL_CHANNELS = "mq"
"""The NOTIFY channel of runners that run every channel."""

SCHEDULED_PAYLOAD = "s"
"""The notification payload sent for delayed jobs (the runner re-reads its timer)."""
CONTROL_PAYLOAD = "c"
"""The notification payload sent when a channel is paused, resumed or limited (mq_set_channel,
migration 0007): the runner re-reads the limits before its next lease."""
FREED_PAYLOAD = "f"
"""The notification payload sent when a job of a limited channel completes (migration 0016):
a slot of that channel may be free."""


def notify_channel(channel_name: str) -> str:
    """The NOTIFY channel for a job channel; the same digest as SQL's mq_notify_channel()."""
    return "mq_" + hashlib.sha256(channel_name.encode()).hexdigest()[:32]


def listen_channels(channel_names: Sequence[str] | None) -> list[str]:
    """What a runner for ``channel_names`` (None: all) listens to."""
    if channel_names is None:
        return [ALL_CHANNELS]
    return sorted({notify_channel(name) for name in channel_names})


class Listener:
    """Keeps a LISTEN connection open, reconnecting with backoff when it drops."""

    def __init__(
        self,
        conninfo: str,
        kwargs: Mapping[str, Any],
        channel_names: Sequence[str] | None,
        on_notify: Callable[[str], None],
        on_connected: Callable[[], None],
        ping_channel: str,
    ) -> None:
        """``on_notify(payload)`` runs for each notification, ``on_connected()`` after each
        successful subscription; ``ping_channel`` is the channel of this runner's probes."""
        self._conninfo = conninfo
        self._kwargs = connect_kwargs(kwargs)
        self._channels = [*listen_channels(channel_names), ping_channel]
        self._ping_channel = ping_channel
        self._pings: dict[str, asyncio.Future[None]] = {}
        self._on_notify = on_notify
        self._on_connected = on_connected
        self._lost = False
        self._failures = 0

    async def probe(self, send: Callable[[str], Awaitable[object]], timeout: float) -> bool:
        """Whether a notification sent now (by ``send(payload)``, on another connection)
        arrives within ``timeout`` seconds."""
        payload = uuid.uuid4().hex
        arrived = asyncio.get_running_loop().create_future()
        self._pings[payload] = arrived
        try:
            await send(payload)
            await within(arrived, timeout)
        except TimeoutError:
            return False
        finally:
            self._pings.pop(payload, None)
        return True

    def _before_sleep(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        self._failures += 1
        log = logger.warning if self._failures == 1 else logger.debug
        log(
            "listener_reconnect_failed",
            error=str(exc).strip(),
            retry_in_s=round(state.upcoming_sleep, 3),
            attempt=state.attempt_number,
        )

    async def _subscribe(self) -> psycopg.AsyncConnection[Any]:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(is_transient),
            wait=RECONNECT_WAIT,
            before_sleep=self._before_sleep,
            reraise=True,
        ):
            with attempt:
                conn = await psycopg.AsyncConnection.connect(self._conninfo, **self._kwargs)
                try:
                    for channel in self._channels:
                        await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                except BaseException:
                    await conn.close()
                    raise
                return conn
        raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover

    async def run(self) -> None:
        """Listens until cancelled."""
        while True:
            conn = await self._subscribe()
            try:
                if self._lost:
                    logger.info("listener_restored")
                    self._lost = False
                self._failures = 0
                self._on_connected()
                async for notification in conn.notifies():
                    if notification.channel == self._ping_channel:
                        arrived = self._pings.get(notification.payload)
                        if arrived is not None and not arrived.done():
                            arrived.set_result(None)
                    else:
                        self._on_notify(notification.payload)
                error = "the connection closed"  # the generator ends when the server hangs up
            except psycopg.Error as exc:
                error = str(exc).strip()
            finally:
                await conn.close()
            self._lost = True
            logger.warning("listener_lost", error=error)
