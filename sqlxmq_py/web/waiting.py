"""Waiting for a job's result on behalf of an HTTP client, within a few pooled turns so that
waiting clients never starve the dashboard (``RESULT_WAITERS``)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import psycopg

from .._aio import within
from ..results import wait_for_result
from .context import WebContext

__all__ = ["wait_turn"]


def _cancellation(exc: BaseException) -> BaseException | None:
    """The cancellation that ``exc`` was raised while handling, if any (re-raised as it was, so
    that the cancel scope that caused it recognises it)."""
    seen: BaseException | None = exc.__context__
    for _ in range(10):
        if seen is None:
            break
        if isinstance(seen, asyncio.CancelledError):
            return seen
        seen = seen.__context__
    task = asyncio.current_task()
    return asyncio.CancelledError() if task is not None and task.cancelling() else None


async def wait_turn(ctx: WebContext, job_id: uuid.UUID, timeout: float) -> Any:
    """``wait_for_result``, holding one of the few waiting turns while it waits."""
    pool = await ctx.pools.open()
    waiters = ctx.pools.waiters
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    acquired = False
    if not waiters.locked():
        await waiters.acquire()
        acquired = True
    elif timeout > 0:
        try:
            await within(waiters.acquire(), timeout)
            acquired = True
        except TimeoutError:
            pass
    try:
        remaining = max(0.0, deadline - loop.time()) if acquired else 0.0
        return await wait_for_result(pool, job_id, remaining)
    except psycopg.OperationalError as exc:
        # Cancelled while waiting (the client went away, a server timeout): psycopg closes the
        # connection and wait_for_result's UNLISTEN then fails on it, hiding the cancellation.
        cancelled = _cancellation(exc)
        if cancelled is not None:
            raise cancelled from None
        raise
    finally:
        if acquired:
            waiters.release()
