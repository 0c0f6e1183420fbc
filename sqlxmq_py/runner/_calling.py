"""Calling a leased job's function: on the loop or in a thread, inside the hooks' wrappers,
with its context values; and telling how the call ended, whatever the job did."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..current_job import BlockingCurrentJob, CurrentJob, JobHost
from ..errors import JobCancelledError, PayloadError
from ._attempt import MISSING_PAYLOAD, Attempt, Ended
from ._execution import call_async, call_thread, job_keys
from ._hookset import HookSet
from ._jobs import JobSource, RunnableJob

__all__ = ["JobCaller"]


class JobCaller:
    """Calls the job functions of a runner's attempts."""

    def __init__(
        self,
        *,
        registry: JobSource,
        host: JobHost,
        hooks: HookSet,
        max_threads: int,
        log: Any,
        on_timeout: Callable[[Attempt, float], None],
        grace: float,
    ) -> None:
        """``on_timeout(attempt, delay)`` arms the watchdog of an async job with a timeout:
        cancelled at its timeout, it has ``grace`` more seconds to stop."""
        self._registry = registry
        self._host = host
        self._hooks = hooks
        self._max_threads = max_threads
        self._log = log
        self._on_timeout = on_timeout
        self._grace = grace
        self._threads: ThreadPoolExecutor | None = None

    async def call(self, a: Attempt, info: CurrentJob) -> Ended:
        """Runs the job function; returns how it ended. Never raises (but for a cancellation
        from outside the runner: the event loop is closing)."""
        job = a.job
        if a.named is None and job.name != MISSING_PAYLOAD:
            return ("unknown", None)
        try:
            named = self._resolve(a)
            kwargs = self._registry.context_for(named)
            timeout = named.options.timeout
            if timeout is not None and named.is_async:
                self._on_timeout(a, timeout.total_seconds() + self._grace)
            with self._hooks.running(info) if self._hooks else contextlib.nullcontext():
                if named.is_async:
                    result = await call_async(named, info, kwargs, timeout)
                else:
                    result = await call_thread(
                        named,
                        BlockingCurrentJob(job, self._host),
                        kwargs,
                        timeout,
                        self._executor(),
                        lambda: self._log.warning(
                            "job_timed_out",
                            timeout_s=timeout and timeout.total_seconds(),
                            detail="a thread cannot be interrupted: it fails when it returns",
                            **job_keys(job),
                        ),
                    )
        except asyncio.CancelledError as exc:
            task = asyncio.current_task()
            if a.interrupted or a.cancelling:  # cancelled by this runner: settle it
                if task is not None:
                    task.uncancel()
                if a.interrupted:
                    return ("interrupted", None)
                return ("raised", JobCancelledError(f"job {job.id} was cancelled while running"))
            if task is not None and task.cancelling():
                raise  # cancelled from outside (the event loop is closing): its lease expires
            return ("raised", exc)  # the job raised CancelledError itself
        except BaseException as exc:  # SystemExit and KeyboardInterrupt too: a job's failure
            return ("raised", exc)
        finally:
            if a.watchdog is not None:
                a.watchdog.cancel()
        return ("returned", result)

    def _resolve(self, a: Attempt) -> RunnableJob:
        job = a.job
        if job.name == MISSING_PAYLOAD:
            raise PayloadError(
                f"job {job.id} has no row in mq_payloads (written by hand without one?): "
                "it cannot run"
            )
        assert a.named is not None  # unknown names are parked before this
        return a.named

    def _executor(self) -> ThreadPoolExecutor:
        if self._threads is None:
            self._threads = ThreadPoolExecutor(
                max_workers=self._max_threads, thread_name_prefix="sqlxmq-job"
            )
        return self._threads

    def shutdown(self) -> None:
        """Lets the job threads end on their own (the runner has closed)."""
        if self._threads is not None:
            self._threads.shutdown(wait=False, cancel_futures=True)
