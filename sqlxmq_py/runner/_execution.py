"""Calling a job function: on the loop or in a thread, within its timeout; and describing how
an attempt ended (pure helpers)."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import traceback
from collections.abc import Callable
from concurrent.futures import Executor
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ..current_job import BlockingCurrentJob, CurrentJob, LeasedJob
from ..errors import JobTimeoutError

if TYPE_CHECKING:
    from ..job import NamedJob

__all__ = ["call_async", "call_thread", "describe_error", "job_keys"]

_MAX_ERROR_CHARS = 16_000


async def call_async(
    named: NamedJob[..., Any],
    info: CurrentJob,
    kwargs: dict[str, object],
    timeout: timedelta | None,
) -> Any:
    """Awaits an ``async def`` job; past ``timeout`` it is cancelled (JobTimeoutError)."""
    if timeout is None:
        return await named.fn(info, **kwargs)
    deadline = asyncio.timeout(timeout.total_seconds())
    try:
        async with deadline:
            return await named.fn(info, **kwargs)
    except TimeoutError as exc:
        if deadline.expired():
            raise JobTimeoutError(
                f"job {named.name!r} ran longer than its timeout of {timeout} and was cancelled"
            ) from exc
        raise


async def call_thread(
    named: NamedJob[..., Any],
    blocking: BlockingCurrentJob,
    kwargs: dict[str, object],
    timeout: timedelta | None,
    executor: Executor,
    on_timeout: Callable[[], None],
) -> Any:
    """Runs a plain ``def`` job in ``executor``, in a copy of the caller's context (so context
    variables set by hooks reach it). A thread cannot be interrupted: past ``timeout`` it keeps
    running (``on_timeout`` is told) and the attempt fails with JobTimeoutError when it ends."""
    loop = asyncio.get_running_loop()
    call = functools.partial(named.fn, blocking, **kwargs)
    running = loop.run_in_executor(executor, contextvars.copy_context().run, call)
    if timeout is None:
        return await running
    done, _ = await asyncio.wait({running}, timeout=timeout.total_seconds())
    if done:
        return running.result()
    on_timeout()
    await running
    raise JobTimeoutError(f"job {named.name!r} ran longer than its timeout of {timeout}")


def describe_error(exc: BaseException) -> str:
    """The text recorded for a failed attempt: the error, then its traceback (truncated)."""
    head = f"{type(exc).__qualname__}: {exc}"
    text = head + "\n\n" + "".join(traceback.format_exception(exc))
    if len(text) > _MAX_ERROR_CHARS:
        text = head[:1000] + "\n\n…\n" + text[-(_MAX_ERROR_CHARS - 1010) :]
    return text


def job_keys(job: LeasedJob) -> dict[str, object]:
    """The keys that identify a job in log events."""
    return {
        "job_id": str(job.id),
        "job_name": job.name,
        "channel_name": job.channel_name,
        "attempt": job.attempt,
    }
