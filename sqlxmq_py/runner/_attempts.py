"""The attempts a runner holds: one coroutine per attempt, from its lease to its settled
outcome, and what stop, cancel requests and lost leases do to it.

An attempt's life, read top to bottom in :meth:`Attempts._run`: call the job (on the loop, or in
a thread), then settle what happened, exactly once: complete it, record the failure, or hand the
lease back, awaiting the batch that writes it; then one log line, the hooks, the counters, and
the slot is free. Nothing a job raises or returns can skip the settling, and a job that ignores
its cancellation is abandoned after a grace period instead of holding its slot forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ..backoff import retry_delay
from ..current_job import BlockingCurrentJob, CurrentJob, JobHost, LeasedJob, encode_job_result
from ..errors import JobCancelledError, JobTimeoutError, PayloadError
from ..hooks import JobOutcome, RunnerHooks
from ..sql import query
from ._batcher import Batcher, Outcome
from ._execution import call_async, call_thread, describe_error, error_summary, job_keys
from ._keepalive import HeldLease
from ._maintenance import AttemptStats

if TYPE_CHECKING:
    from ..job import NamedJob
    from ..registry import JobRegistry

__all__ = ["MISSING_PAYLOAD", "Attempt", "Attempts"]

MISSING_PAYLOAD = "sqlxmq:missing-payload"
"""The name the lease gives a job whose mq_payloads row is missing."""

_Ended = tuple[Literal["returned", "raised", "interrupted", "unknown"], Any]

_WARN_UNKNOWN_EVERY = 600.0
"""Seconds between two warnings about one unknown job name."""

_FAILED_OUTCOMES: dict[str | None, JobOutcome] = {
    "r": "retrying",
    "s": "retrying",
    "f": "failed",
    "c": "cancelled",
    None: "lease_lost",
}


class CompletionRolledBack(Exception):
    """The job completed itself inside a transaction that did not commit, then returned."""


@dataclass(slots=True, eq=False)
class Attempt:
    """One lease the runner holds, from the lease until its outcome is written."""

    job: LeasedJob
    named: NamedJob[..., Any] | None
    started: float
    task: asyncio.Task[None] | None = None
    running: bool = True
    """The job function has not returned (nor been abandoned)."""
    interrupted: bool = False
    """``stop()`` cancelled it: its lease goes back without using up an attempt."""
    cancelling: bool = False
    """A cancel request cancelled its task."""
    abandoned: bool = False
    """It ignored its cancellation past the grace period and was given up."""
    settled: bool = False
    watchdog: asyncio.TimerHandle | None = None
    finished: float | None = None

    @property
    def is_async(self) -> bool:
        """Whether the job runs on the loop (cancellable) rather than in a thread."""
        return self.named is None or self.named.is_async


class Attempts:
    """The runner's attempts, by lease token."""

    def __init__(
        self,
        *,
        registry: JobRegistry,
        batcher: Batcher,
        host: JobHost,
        hooks: tuple[RunnerHooks, ...],
        stats: AttemptStats,
        cancel_grace: float,
        max_threads: int,
        log: Any,
        on_free: Callable[[str], None],
    ) -> None:
        """``on_free(channel_name)`` is called whenever a slot frees."""
        self._registry = registry
        self._batcher = batcher
        self._host = host
        self._hooks = hooks
        self._stats = stats
        self._grace = cancel_grace
        self._max_threads = max_threads
        self._log = log
        self._on_free = on_free
        self._loop = asyncio.get_running_loop()
        self._by_token: dict[uuid.UUID, Attempt] = {}
        self._threads: ThreadPoolExecutor | None = None
        self._warned: dict[str, float] = {}  # unknown job name -> when it was last warned of
        self.held_bytes = 0
        """Payload bytes of the attempts held."""
        self.running = 0
        """Job functions running now (abandoned ones not counted)."""
        self.all_done = asyncio.Event()
        """Set while no job function runs."""
        self.all_settled = asyncio.Event()
        """Set while no attempt is held."""
        self.all_done.set()
        self.all_settled.set()
        enabled = getattr(log, "is_enabled_for", None)
        self._debug = enabled is None or bool(enabled(10))

    def __len__(self) -> int:
        return len(self._by_token)

    # --- starting ---

    def start(self, row: tuple[Any, ...]) -> None:
        """Starts an attempt for a row of the lease statement."""
        (job_id, token, attempt, max_attempts, cname, cargs, lease, name, pjson, pbytes, backoff,
         key, retain_for, headers, size) = row  # fmt: skip
        job = LeasedJob(
            id=job_id,
            token=token,
            name=name,
            attempt=attempt,
            max_attempts=max_attempts,
            channel_name=cname,
            channel_args=cargs,
            lease=lease,
            retry_backoff=backoff,
            payload_json=pjson,
            payload_bytes=pbytes,
            job_key=key,
            retain_for=retain_for,
            headers=headers,
            payload_size=size,
        )
        named = self._registry.get(name)
        if named is not None:
            job.codec, job.result_codec = named.payload_codec, named.result_codec
        a = Attempt(job, named, self._loop.time())
        self._by_token[token] = a
        self.held_bytes += size
        self.running += 1
        self.all_done.clear()
        self.all_settled.clear()
        a.task = self._loop.create_task(self._run(a), name=f"sqlxmq-job-{job_id}")

    def _executor(self) -> ThreadPoolExecutor:
        if self._threads is None:
            self._threads = ThreadPoolExecutor(
                max_workers=self._max_threads, thread_name_prefix="sqlxmq-job"
            )
        return self._threads

    # --- one attempt ---

    async def _run(self, a: Attempt) -> None:
        job = a.job
        info = CurrentJob(job, self._host)
        if self._debug:
            self._log.debug("job_started", **job_keys(job))
        ended = await self._call(a, info)
        self._returned(a)
        if a.abandoned:
            return  # settled by the watchdog
        try:
            await self._settle(a, info, ended)
        except BaseException as exc:
            # a bug here must not cost the slot: the lease expires and the job runs again
            self._log.error("attempt_settle_failed", error=error_summary(exc), **job_keys(job))
            if not a.settled:
                self._finish(a, "lease_lost")
            if isinstance(exc, asyncio.CancelledError):
                raise

    async def _call(self, a: Attempt, info: CurrentJob) -> _Ended:
        """Runs the job function; returns how it ended. Never raises."""
        job = a.job
        if a.named is None and job.name != MISSING_PAYLOAD:
            return ("unknown", None)
        try:
            named = self._resolve(a)
            kwargs = self._registry.context_for(named)
            timeout = named.options.timeout
            if timeout is not None and named.is_async:
                self._arm(a, timeout.total_seconds() + self._grace, "timeout", record=True)
            with contextlib.ExitStack() as wrappers:
                if self._hooks:
                    self._hook("job_started", info)
                    for hooks in self._hooks:
                        wrappers.enter_context(hooks.running(info))
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

    def _resolve(self, a: Attempt) -> NamedJob[..., Any]:
        job = a.job
        if job.name == MISSING_PAYLOAD:
            raise PayloadError(
                f"job {job.id} has no row in mq_payloads (written by hand without one?): "
                "it cannot run"
            )
        assert a.named is not None  # unknown names are parked before this
        return a.named

    async def _settle(self, a: Attempt, info: CurrentJob, ended: _Ended) -> None:
        job = a.job
        kind, value = ended
        if kind == "unknown":
            await self._park(a)
            return
        if kind == "interrupted":
            job.settling = True
            released = await self._batcher.release(job)
            if released == "released":
                self._log.warning("job_released", **job_keys(job))
                self._finish(a, "released")
            elif released == "cancelled":
                self._log.warning("job_cancelled", error="cancelled while running", **job_keys(job))
                self._finish(a, "cancelled")
            else:
                self._lost(a, "release")
            return
        if job.completing_in_tx:
            state = await self._tx_completion(job)
            if state == "completed":
                job.completed = True
            elif state == "lost":
                job.lease_lost = True
            else:  # its transaction rolled back: the attempt ends as if it had not completed
                job.completing_in_tx = False
                if kind == "returned":
                    kind, value = (
                        "raised",
                        CompletionRolledBack(
                            "complete(conn) ran in a transaction that did not commit, and the job "
                            "returned normally: the attempt is failed so that the job runs again"
                        ),
                    )
        if job.completed:
            if kind == "raised":
                self._log.warning(
                    "job_raised_after_completing", error=error_summary(value), **job_keys(job)
                )
            self._completed(a)
        elif job.lease_lost:
            self._lost(a, "finish")
        elif kind == "returned":
            await self._returned_normally(a, value)
        else:
            await self._failed(a, info, value)

    async def _park(self, a: Attempt) -> None:
        """A job whose name this runner does not know waits for one that does; its attempt is
        not counted."""
        job = a.job
        known = sorted(self._registry.names)
        shown = ", ".join(map(repr, known[:10])) + (", …" if len(known) > 10 else "")
        reason = (
            f"waiting for a runner that knows the job name {job.name!r} (a runner that runs "
            f"{len(known)} other jobs leased it: {shown})"
        )
        now = self._loop.time()
        if now - self._warned.get(job.name, -_WARN_UNKNOWN_EVERY) >= _WARN_UNKNOWN_EVERY:
            self._warned[job.name] = now
            self._log.warning(
                "job_name_unknown",
                detail="parked until a runner that knows this name starts (no attempt used)",
                **job_keys(job),
            )
        job.settling = True
        outcome = await self._batcher.park(job, reason)
        if outcome == "parked":
            self._finish(a, "parked")
        elif outcome == "cancelled":
            self._log.warning("job_cancelled", error="cancelled while parked", **job_keys(job))
            self._finish(a, "cancelled")
        else:
            self._lost(a, "park")

    async def _returned_normally(self, a: Attempt, result: Any) -> None:
        job = a.job
        if a.named is not None and not a.named.options.auto_complete:
            self._log.warning(
                "job_returned_without_completing",
                detail="auto_complete=False: the job runs again when its lease expires",
                **job_keys(job),
            )
            self._finish(a, "abandoned")
            return
        job.completing = True
        if await self._batcher.complete(job, self._encode_result(job, result)) == "completed":
            job.completed = True
            self._completed(a)
        else:
            self._lost(a, "complete")

    async def _failed(self, a: Attempt, info: CurrentJob, exc: BaseException) -> None:
        job = a.job
        error = describe_error(exc)
        job.settling = True
        state = await self._batcher.fail(job, error, retry_delay(job.attempt, job.retry_backoff))
        outcome = _FAILED_OUTCOMES.get(state, "retrying")
        self._log_failure(job, outcome, exc, error)
        self._finish(a, outcome)
        handler = self._registry.error_handler
        if handler is not None:
            try:
                result = handler(info, exc)
                if result is not None:
                    await result
            except BaseException as handler_exc:
                self._log.error(
                    "error_handler_failed", error=error_summary(handler_exc), **job_keys(job)
                )

    def _log_failure(
        self, job: LeasedJob, outcome: JobOutcome, exc: BaseException, error: str
    ) -> None:
        keys = job_keys(job)
        summary = error_summary(exc)
        if outcome == "lease_lost":
            self._log.warning("lease_lost", action="fail", error=summary, **keys)
        elif outcome == "cancelled":
            self._log.warning("job_cancelled", error=summary, **keys)
        elif outcome == "failed":
            self._log.error(
                "job_failed",
                final=True,
                error=summary,
                max_attempts=job.max_attempts,
                traceback=error,
                **keys,
            )
        else:
            self._log.warning("job_failed", final=False, error=summary, traceback=error, **keys)

    async def _tx_completion(self, job: LeasedJob) -> str:
        """How the job's own transaction that completed it ended, seen from outside: waits
        while that transaction is still open."""
        wait = 0.02
        while True:
            rows = await self._host.execute(
                query("completion_check"), {"id": job.id, "token": job.token}
            )
            state = str(rows[0][0])
            if state != "pending":
                return state
            await asyncio.sleep(wait)
            wait = min(wait * 2, 1.0)

    def _encode_result(self, job: LeasedJob, result: Any) -> str | None:
        """The result as JSON. Whether it is kept is decided when the job completes (someone
        may start waiting for it while it runs), so every result is sent."""
        try:
            return encode_job_result(job, result)
        except PayloadError as exc:
            self._log.warning("job_result_not_stored", error=error_summary(exc), **job_keys(job))
            return None

    # --- endings ---

    def _completed(self, a: Attempt) -> None:
        if self._debug:
            self._log.debug("job_completed", duration_s=self._duration(a), **job_keys(a.job))
        self._finish(a, "completed")

    def _lost(self, a: Attempt, action: str) -> None:
        a.job.lease_lost = True
        self._log.warning("lease_lost", action=action, **job_keys(a.job))
        self._finish(a, "lease_lost")

    def _returned(self, a: Attempt) -> None:
        """The job function is done (returned, raised, or was abandoned)."""
        if a.running:
            a.running = False
            a.finished = self._loop.time()
            self.running -= 1
            if self.running == 0:
                self.all_done.set()

    def _finish(self, a: Attempt, outcome: JobOutcome) -> None:
        """The attempt's outcome is settled: count it, tell the hooks, free the slot."""
        if a.settled:
            return
        a.settled = True
        job = a.job
        self._stats.add(job.channel_name, outcome)
        if self._hooks:
            self._hook("job_finished", CurrentJob(job, self._host), outcome, self._duration(a))
        if self._by_token.get(job.token) is a:
            del self._by_token[job.token]
            self.held_bytes -= job.payload_size
            if not self._by_token:
                self.all_settled.set()
        self._on_free(job.channel_name)

    def _duration(self, a: Attempt) -> float:
        end = a.finished if a.finished is not None else self._loop.time()
        return round(end - a.started, 6)

    def _hook(self, event: str, *args: Any) -> None:
        for hooks in self._hooks:
            try:
                getattr(hooks, event)(*args)
            except Exception as exc:
                self._log.error(
                    "hook_failed",
                    hook=type(hooks).__name__,
                    hook_event=event,
                    error=error_summary(exc),
                )

    # --- what happens to attempts from outside ---

    async def complete(self, job: LeasedJob, result: object) -> bool:
        """``CurrentJob.complete()`` without a connection: completes the job in the next batch
        and waits until that is durable; False if the lease is gone."""
        a = self._by_token.get(job.token)
        if a is None or a.settled or job.completing or job.completed:
            return False
        encoded = encode_job_result(job, result)  # a PayloadError here leaves it completable
        job.completing = True
        done = await self._batcher.complete(job, encoded) == "completed"
        if done:
            job.completed = True
        else:
            job.lease_lost = True
        return done

    def _arm(self, a: Attempt, delay: float, why: str, *, record: bool) -> None:
        """Gives the attempt ``delay`` seconds to end; then it is abandoned."""
        if a.watchdog is not None:
            a.watchdog.cancel()
        a.watchdog = self._loop.call_later(delay, self._abandon, a, why, record)

    def _abandon(self, a: Attempt, why: str, record: bool) -> None:
        """An async job ignored its cancellation past the grace period: its slot is freed and
        its lease no longer renewed. With ``record``, the attempt is failed (timed out, or
        cancelled if someone asked); else its lease is left to expire."""
        if not a.running or a.settled:
            return
        job = a.job
        a.abandoned = True
        self._returned(a)
        self._log.error(
            "job_abandoned",
            reason=why,
            grace_s=self._grace,
            detail="the job ignored its cancellation; its coroutine may still be running",
            **job_keys(job),
        )
        if not record:
            self._finish(a, "abandoned")
            return
        exc = JobTimeoutError(
            f"job {job.name!r} did not stop within {self._grace} s of being cancelled ({why})"
        )
        future = self._batcher.fail(
            job, describe_error(exc), retry_delay(job.attempt, job.retry_backoff)
        )

        def recorded(done: asyncio.Future[Outcome]) -> None:
            outcome = _FAILED_OUTCOMES.get(done.result(), "retrying")
            self._log_failure(job, outcome, exc, str(exc))
            self._finish(a, outcome)

        future.add_done_callback(recorded)

    def interrupt(self) -> int:
        """``stop()``'s timeout passed: cancels every async job still running (its lease goes
        back once it has stopped; one that ignores the cancellation is abandoned after the
        grace period). Returns how many thread jobs still run: those cannot be interrupted,
        keep their leases and settle normally when they return."""
        threads = 0
        for a in list(self._by_token.values()):
            if not a.running or a.abandoned:
                continue
            if not a.is_async:
                threads += 1
            elif not a.interrupted and a.task is not None:
                a.interrupted = True
                a.task.cancel()
                self._arm(a, self._grace, "the runner stopped", record=False)
        return threads

    def cancel_requested(self, token: uuid.UUID) -> None:
        """Someone asked to cancel this running job: ``current_job.cancelled`` becomes true, and
        an async job's task is cancelled (a thread job must look at the flag)."""
        a = self._by_token.get(token)
        if a is None or a.settled:
            return
        if not a.job.cancelled:
            a.job.cancelled = True
            self._log.info("job_cancel_requested", **job_keys(a.job))
        if a.running and a.is_async and not (a.cancelling or a.interrupted) and a.task:
            a.cancelling = True
            a.task.cancel()
            self._arm(a, self._grace, "a cancel request", record=True)

    def lease_lost(self, token: uuid.UUID) -> None:
        """The renewal found this lease gone."""
        a = self._by_token.get(token)
        job = a.job if a is not None else None
        if a is None or job is None or a.settled or job.completed:
            return
        if job.completing or job.settling:
            return  # the outcome's write, under way, says whether the lease was still held
        if job.completing_in_tx:
            return  # its own transaction deleted the row: settled when the job returns
        job.lease_lost = True
        self._log.warning("lease_lost", action="renew", **job_keys(job))

    def held(self) -> list[HeldLease]:
        """The leases to renew (called from the keeper's thread)."""
        return [
            (a.job.id, a.job.token, a.job.lease)
            for a in list(self._by_token.values())
            if not (a.settled or a.abandoned or a.job.lease_lost or a.job.completed)
        ]

    def shutdown(self) -> None:
        """Lets the job threads end on their own (the runner has closed)."""
        if self._threads is not None:
            self._threads.shutdown(wait=False, cancel_futures=True)
