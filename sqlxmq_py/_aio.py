"""Waiting with a timeout without losing a cancellation.

On Python 3.11, ``asyncio.wait_for(event.wait(), t)`` returns normally when the task is
cancelled in the same turn of the loop as the event is set: the cancellation is lost, and a
``while True`` loop around it never ends (a runner whose ``stop()`` then waits forever).
``asyncio.timeout()`` keeps the cancellation, so every wait of the library goes through it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

__all__ = ["redeliver_cancellation", "wait_event", "within"]

T = TypeVar("T")


async def wait_event(event: asyncio.Event, timeout: float | None) -> bool:
    """Waits until ``event`` is set, at most ``timeout`` seconds (None: no limit); whether it
    was set. A cancellation of the caller is always raised."""
    if event.is_set():
        return True
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        return False
    return True


async def within(awaitable: Awaitable[T], timeout: float | None) -> T:
    """``await awaitable``, raising TimeoutError after ``timeout`` seconds (None: no limit); a
    cancellation of the caller is always raised."""
    async with asyncio.timeout(timeout):
        return await awaitable


def redeliver_cancellation() -> None:
    """Raises ``CancelledError`` if the current task was asked to cancel and the request was
    swallowed on its way: Python 3.11's ``asyncio.wait_for``, which psycopg_pool uses to wait
    for a free connection, loses a cancellation that arrives as the wait completes, and the
    task would otherwise go on as if nothing had been asked."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
