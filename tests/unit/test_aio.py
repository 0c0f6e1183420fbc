"""Waits with a timeout never lose a cancellation (sqlxmq_py._aio). Python 3.11's
``asyncio.wait_for(event.wait(), t)`` returns normally when its task is cancelled in the same
turn of the loop as the event is set; a runner loop around it then never ended, and ``stop()``
waited for it forever."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from sqlxmq_py._aio import redeliver_cancellation, wait_event, within

Waiter = Callable[[asyncio.Event], Coroutine[Any, Any, object]]


async def by_wait_event(event: asyncio.Event) -> object:
    return await wait_event(event, 10.0)


async def by_within(event: asyncio.Event) -> object:
    return await within(event.wait(), 10.0)


@pytest.mark.parametrize("wait", [by_wait_event, by_within])
@pytest.mark.parametrize("event_first", [True, False])
async def test_a_loop_waiting_for_an_event_ends_when_cancelled_as_the_event_is_set(
    wait: Waiter, event_first: bool
) -> None:
    event = asyncio.Event()
    waiting = asyncio.Event()

    async def loop() -> None:
        while True:  # the runner's promoter, lease and listen-check loops
            waiting.set()
            await wait(event)
            event.clear()

    task = asyncio.create_task(loop())
    await waiting.wait()
    await asyncio.sleep(0)  # the loop is inside its wait now
    if event_first:
        event.set()
        task.cancel()
    else:
        task.cancel()
        event.set()
    done, _ = await asyncio.wait({task}, timeout=5)  # a guard against a hang, not a timing
    assert done == {task}
    assert task.cancelled()


async def test_wait_event_says_whether_the_event_came() -> None:
    event = asyncio.Event()
    assert await wait_event(event, 0) is False
    event.set()
    assert await wait_event(event, 0) is True
    assert await wait_event(event, None) is True


async def test_within_raises_timeout_error_and_returns_the_result() -> None:
    never = asyncio.Event()
    with pytest.raises(TimeoutError):
        await within(never.wait(), 0)
    assert await within(asyncio.sleep(0, result="done"), None) == "done"


async def test_a_swallowed_cancellation_is_delivered_again() -> None:
    """What Python 3.11's wait_for does when the cancellation comes as its wait completes:
    the task counts the request, but no CancelledError reaches its code."""

    async def swallowing() -> str:
        task = asyncio.current_task()
        assert task is not None
        redeliver_cancellation()  # nothing asked yet: goes on
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(0)  # the request arrives here, and is lost
        redeliver_cancellation()
        return "went on as if nothing had been asked"

    with pytest.raises(asyncio.CancelledError):
        await asyncio.create_task(swallowing())
