"""Calling a job function (on the loop or in a thread) and describing how an attempt ended.

Everything here must survive whatever a job raises or returns: an exception whose ``__str__``
or ``__repr__`` raises, a cycle of causes, a chain ten thousand long, text PostgreSQL cannot
store (NUL, lone surrogates). The describing helpers never raise.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
import socket
import traceback
from collections.abc import Callable
from concurrent.futures import Executor
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from .._text import clean_text, error_summary, safe_text, type_name
from ..current_job import BlockingCurrentJob, CurrentJob, JobHost, LeasedJob
from ..errors import JobTimeoutError
from ..sql import query

if TYPE_CHECKING:
    from ._jobs import RunnableJob

__all__ = [
    "call_async",
    "call_thread",
    "describe_error",
    "error_summary",
    "job_keys",
    "runner_identity",
    "safe_text",
    "tx_completion",
]

MAX_ERROR_CHARS = 16_000
"""The longest error text recorded for an attempt (its head and the end of its traceback)."""


def runner_identity() -> str:
    """This runner as the jobs it interrupts record it: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


_MAX_CHAIN = 20  # causes and contexts shown in a traceback; a longer chain is cut


async def call_async(
    named: RunnableJob,
    info: CurrentJob,
    kwargs: dict[str, object],
    timeout: timedelta | None,
) -> Any:
    """Awaits an ``async def`` job; past ``timeout`` it is cancelled (JobTimeoutError). A job
    that swallows the cancellation is the runner's watchdog's business (see the runner)."""
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
    named: RunnableJob,
    blocking: BlockingCurrentJob,
    kwargs: dict[str, object],
    timeout: timedelta | None,
    executor: Executor,
    on_timeout: Callable[[], None],
) -> Any:
    """Runs a plain ``def`` job in ``executor``, in a copy of the caller's context (so context
    variables set by hooks reach it). A thread cannot be interrupted: past ``timeout`` it keeps
    running (``on_timeout`` is told) and the attempt fails with JobTimeoutError when it ends.

    The thread is always awaited to its end, even if this coroutine is cancelled meanwhile: a
    job whose thread still runs has not stopped, and its lease must not be handed back.
    """
    loop = asyncio.get_running_loop()
    call = functools.partial(contextvars.copy_context().run, named.fn, blocking, **kwargs)
    running = loop.run_in_executor(executor, _guarded, call)
    timed_out = False

    def expire() -> None:
        nonlocal timed_out
        timed_out = True
        on_timeout()

    timer = None if timeout is None else loop.call_later(timeout.total_seconds(), expire)
    try:
        while True:
            try:
                result = await asyncio.shield(running)
                break
            except asyncio.CancelledError:
                if running.done():
                    result = running.result()
                    break
                # cancelled while the thread runs on: wait for it all the same
                current = asyncio.current_task()
                if current is not None:
                    current.uncancel()
    finally:
        if timer is not None:
            timer.cancel()
    if timed_out:
        raise JobTimeoutError(f"job {named.name!r} ran longer than its timeout of {timeout}")
    returned, value = result
    if not returned:
        raise value  # here, not through an await: see _guarded
    return value


def _guarded(call: Callable[[], Any]) -> tuple[bool, Any]:
    """Runs ``call`` (in a job thread) and returns (True, its result) or (False, what it
    raised). Whatever a thread raises reaches the loop as a value: a ``GeneratorExit`` thrown
    into a coroutine through an ``await`` breaks it under uvloop."""
    try:
        return True, call()
    except BaseException as exc:
        return False, exc


async def tx_completion(host: JobHost, job: LeasedJob) -> str:
    """How the job's own transaction that completed it (``complete(conn)``) ended, seen from
    outside: 'completed', 'lost', or anything else for rolled back; waits while that
    transaction is still open."""
    wait = 0.02
    while True:
        rows = await host.execute(query("completion_check"), {"id": job.id, "token": job.token})
        state = str(rows[0][0])
        if state != "pending":
            return state
        await asyncio.sleep(wait)
        wait = min(wait * 2, 1.0)


def describe_error(exc: BaseException) -> str:
    """The text recorded for a failed attempt: the error, then its traceback (truncated).
    Never raises, whatever ``exc`` is."""
    head = error_summary(exc)
    try:
        details = "".join(_traceback_lines(exc))
    except BaseException as failure:
        details = f"(the traceback could not be formatted: {type_name(failure)})\n"
    text = clean_text(head + "\n\n" + details)
    if len(text) > MAX_ERROR_CHARS:
        text = head[:1000] + "\n\n…\n" + text[-(MAX_ERROR_CHARS - 1010) :]
    return text


def _traceback_lines(exc: BaseException) -> list[str]:
    if _chain_is_short(exc):
        return list(traceback.TracebackException.from_exception(exc, limit=50).format())
    # a long or cyclic chain: the traceback module would walk all of it; show the last link
    lines = ["Traceback (most recent call last):\n"]
    lines += traceback.format_tb(exc.__traceback__, limit=50)
    lines += traceback.format_exception_only(type(exc), exc)
    lines.append(f"(more than {_MAX_CHAIN} chained causes or a cycle of them: not shown)\n")
    return lines


def _chain_is_short(exc: BaseException) -> bool:
    """Whether the causes and contexts of ``exc`` are few enough to print (a cycle counts as
    long: the traceback module handles it, but a chain of thousands costs seconds)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and len(seen) <= _MAX_CHAIN:
        if id(current) in seen:
            return False
        seen.add(id(current))
        try:
            cause = current.__cause__ or current.__context__
        except BaseException:
            return False
        current = cause if isinstance(cause, BaseException) else None
    return current is None


def job_keys(job: LeasedJob) -> dict[str, object]:
    """The keys that identify a job in log events."""
    return {
        "job_id": str(job.id),
        "job_name": job.name,
        "channel_name": job.channel_name,
        "attempt": job.attempt,
    }
