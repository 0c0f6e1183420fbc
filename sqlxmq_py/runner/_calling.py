"""Calling a leased job's function: on the loop or in a thread, inside the hooks' wrappers,
with its context values; and telling how the call ended, whatever the job did."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from ..current_job import BlockingCurrentJob, CurrentJob, JobHost, LeasedJob
from ..errors import JobCancelledError, PayloadError
from ..process_job import ProcessJob
from ._attempt import MISSING_PAYLOAD, Attempt, Ended
from ._execution import call_async, call_thread, job_keys
from ._hookset import HookSet
from ._jobs import JobSource, RunnableJob
from ._processes import ProcessLimits, ProcessPool

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
        processes: ProcessLimits,
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
        self._process_limits = processes
        self._processes: ProcessPool | None = None
        self._no_context: set[str] = set()
        """Names of jobs that take no context values (their kwargs are always empty)."""

    async def call(self, a: Attempt, info: CurrentJob) -> Ended:
        """Runs the job function; returns how it ended. Never raises (but for a cancellation
        from outside the runner: the event loop is closing)."""
        job = a.job
        named = a.named
        if named is None and job.name != MISSING_PAYLOAD:
            return ("unknown", None)
        try:
            if named is None:
                raise PayloadError(
                    f"job {job.id} has no row in mq_payloads (written by hand without one?): "
                    "it cannot run"
                )
            kwargs = self._context(named)
            timeout = named.options.timeout
            is_async = named.is_async
            if timeout is not None and is_async:
                self._on_timeout(a, timeout.total_seconds() + self._grace)
            if self._hooks.any:
                with self._hooks.running(info):
                    result = await self._invoke(named, job, info, kwargs, timeout, is_async)
            elif is_async and timeout is None:
                result = await named.fn(info, **kwargs)  # the common case, without a wrapper
            else:
                result = await self._invoke(named, job, info, kwargs, timeout, is_async)
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
            if a.interrupted and not (job.completed or job.completing or job.completing_in_tx):
                return ("interrupted", None)  # it stopped because the runner is stopping
            return ("raised", exc)
        finally:
            if a.watchdog is not None:
                a.watchdog.cancel()
        return ("returned", result)

    def _context(self, named: RunnableJob) -> dict[str, object]:
        """The job's context values (raises ConfigurationError if one is missing)."""
        if named.name in self._no_context:
            return {}
        kwargs = self._registry.context_for(named)
        if not kwargs:
            # a job without context parameters never gets any: skip the look-up next time
            self._no_context.add(named.name)
        return kwargs

    async def _invoke(
        self,
        named: RunnableJob,
        job: LeasedJob,
        info: CurrentJob,
        kwargs: dict[str, object],
        timeout: timedelta | None,
        is_async: bool,
    ) -> Any:
        if is_async:
            return await call_async(named, info, kwargs, timeout)
        if named.options.isolation == "process":
            if self._processes is None:
                self._processes = ProcessPool(self._process_limits)
            fn = named.fn
            return await self._processes.run(
                fn.__module__,
                fn.__qualname__,
                process_job(job),
                None if timeout is None else timeout.total_seconds(),
            )
        return await call_thread(
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
        if self._processes is not None:
            self._processes.close()


def process_job(job: LeasedJob) -> ProcessJob[Any]:
    """What a process-isolated job's process receives of its lease."""
    return ProcessJob(
        id=job.id,
        name=job.name,
        attempt=job.attempt,
        max_attempts=job.max_attempts,
        channel_name=job.channel_name,
        channel_args=job.channel_args,
        job_key=job.job_key,
        headers=json.loads(job.headers) if job.headers else {},
        payload_json=job.payload_json,
        payload_bytes=job.payload_bytes,
    )
