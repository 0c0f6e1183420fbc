"""The attempts a runner holds: one coroutine per attempt, from its lease to its settled
outcome, and what stop, cancel requests and lost leases do to it.

An attempt's life reads top to bottom in :meth:`Attempts._run`: call the job (``_calling``),
then settle what happened, exactly once, by awaiting the batched write of its outcome
(complete it, record the failure, park it, or hand the lease back); then
:meth:`Attempts._finish` logs its one line, counts it, tells the hooks and frees the slot.
Nothing a job raises or returns can skip the settling. A job that ignores its cancellation is
abandoned after a grace period (its task is stuck in the job's code, so the watchdog settles
it, through the same ``_finish``) instead of holding its slot forever.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

from ..backoff import retry_delay
from ..codec import Codec
from ..current_job import CurrentJob, JobHost, LeasedJob, encode_job_result
from ..errors import JobTimeoutError, PayloadError
from ._attempt import (
    COMPLETED,
    MISSING_PAYLOAD,
    Attempt,
    CompletionRolledBack,
    Ended,
    Settled,
    UnknownNames,
    failure,
    hand_back,
    leased_job,
    lost,
    lost_if_gone,
    park_reason,
    parking,
)
from ._batcher import Batcher, Outcome
from ._calling import JobCaller
from ._execution import describe_error, error_summary, job_keys, tx_completion
from ._hookset import HookSet
from ._jobs import JobSource, RunnableJob
from ._keepalive import HeldLease
from ._maintenance import AttemptStats
from ._processes import ProcessLimits

__all__ = ["MISSING_PAYLOAD", "Attempt", "Attempts"]


class Attempts:
    """The runner's attempts, by lease token."""

    def __init__(
        self,
        *,
        registry: JobSource,
        batcher: Batcher,
        host: JobHost,
        hooks: HookSet,
        stats: AttemptStats,
        cancel_grace: float,
        max_threads: int,
        processes: ProcessLimits,
        log: Any,
        on_free: Callable[[str], None],
        on_returned: Callable[[], None] = lambda: None,
    ) -> None:
        """``on_free(channel_name)`` is called whenever an attempt settles (its lease is gone),
        ``on_returned()`` whenever a job function returns (its slot is free while its outcome
        is written)."""
        self._registry = registry
        self._batcher = batcher
        self._host = host
        self._hooks = hooks
        self._stats = stats
        self._grace = cancel_grace
        self._log = log
        self._on_free = on_free
        self._on_returned = on_returned
        self._loop = asyncio.get_running_loop()
        self._by_token: dict[int, Attempt] = {}
        """By lease token (its ``int``: hashed in C, where a UUID's hash is Python code)."""
        self._jobs: dict[str, tuple[RunnableJob | None, Codec | None, Codec | None]] = {}
        """The registry's job and codecs by name, looked up once per name."""
        self._caller = JobCaller(
            registry=registry,
            host=host,
            hooks=hooks,
            max_threads=max_threads,
            processes=processes,
            log=log,
            on_timeout=lambda a, delay: self._arm(a, delay, "timeout", record=True),
            grace=cancel_grace,
        )
        self._unknown = UnknownNames()
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

    def held_in(self, channel_name: str) -> int:
        """Attempts held of ``channel_name``'s jobs, running or being settled."""
        return sum(1 for a in self._by_token.values() if a.job.channel_name == channel_name)

    def start(self, row: tuple[Any, ...]) -> Attempt:
        """Starts an attempt for a row of the lease statement and returns it."""
        job = leased_job(row)
        found = self._jobs.get(job.name)
        if found is None:
            named = self._registry.get(job.name)
            found = (named, None, None)
            if named is not None:
                found = (named, named.payload_codec, named.result_codec)
            self._jobs[job.name] = found
        named, job.codec, job.result_codec = found
        a = Attempt(job, named, self._loop.time())
        self._by_token[job.token.int] = a
        self.held_bytes += job.payload_size
        self.running += 1
        if self.running == 1:
            self.all_done.clear()
        if len(self._by_token) == 1:
            self.all_settled.clear()
        # no task name: formatting one per job costs more than the rest of the start
        a.task = self._loop.create_task(self._run(a))
        return a

    # --- one attempt, from its lease to its settled outcome ---

    async def _run(self, a: Attempt) -> None:
        job = a.job
        info = CurrentJob(job, self._host)
        if self._debug:
            self._log.debug("job_started", **job_keys(job))
        ended = await self._caller.call(a, info)
        self._returned(a)
        if a.abandoned:
            return  # settled by the watchdog: see _abandon
        try:
            settled = await self._settle(a, ended)
        except BaseException as exc:
            # a bug here must not cost the slot: the lease expires and the job runs again
            self._log.error("attempt_settle_failed", error=error_summary(exc), **job_keys(job))
            self._finish(a, Settled(outcome="lease_lost"))
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        self._finish(a, settled)
        if settled.error is not None:
            await self._handle_error(info, job, settled.error)

    async def _settle(self, a: Attempt, ended: Ended) -> Settled:
        """Writes the attempt's outcome (awaiting its batch) and says what it was."""
        job = a.job
        kind, value = ended
        if kind == "unknown":
            if self._unknown.warn_now(job.name, self._loop.time()):
                self._log.warning(
                    "job_name_unknown",
                    detail="parked until a runner that knows this name starts (no attempt used)",
                    **job_keys(job),
                )
            job.settling = True
            reason = park_reason(job.name, self._registry.names)
            return lost_if_gone(job, parking(await self._batcher.park(job, reason)))
        if kind == "interrupted":
            job.settling = True
            return lost_if_gone(job, hand_back(await self._batcher.release(job)))
        if job.completing_in_tx:
            state = await tx_completion(self._host, job)
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
            return COMPLETED
        if job.lease_lost:
            return lost("finish")  # found gone by a renewal, or by complete()
        if kind == "raised":
            error = describe_error(value)
            job.settling = True
            delay = retry_delay(job.attempt, job.retry_backoff)
            return failure(job, await self._batcher.fail(job, error, delay), value, error)
        if a.named is not None and not a.named.options.auto_complete:
            return Settled(
                outcome="abandoned",
                event="job_returned_without_completing",
                keys={"detail": "auto_complete=False: the job runs again when its lease expires"},
            )
        job.completing = True
        result = None if value is None else self._encode_result(job, value)
        if await self._batcher.complete(job, result) == "completed":
            job.completed = True
            return COMPLETED
        return lost_if_gone(job, lost("complete"))

    def _finish(self, a: Attempt, settled: Settled) -> None:
        """The attempt's outcome is settled: its one log line, its count, the hooks, and its
        slot freed."""
        if a.settled:
            return
        a.settled = True
        job = a.job
        if settled.event is not None and (settled.level != "debug" or self._debug):
            keys = dict(settled.keys)
            if settled.timed:
                keys["duration_s"] = self._duration(a)
            getattr(self._log, settled.level)(settled.event, **keys, **job_keys(job))
        self._stats.add(job.channel_name, settled.outcome)
        if self._hooks:
            info = CurrentJob(job, self._host)
            self._hooks.call("job_finished", info, settled.outcome, self._duration(a))
        token = job.token.int
        if self._by_token.get(token) is a:
            del self._by_token[token]
            self.held_bytes -= job.payload_size
            if not self._by_token:
                self.all_settled.set()
        self._on_free(job.channel_name)

    async def _handle_error(self, info: CurrentJob, job: LeasedJob, exc: BaseException) -> None:
        handler = self._registry.error_handler
        if handler is None:
            return
        try:
            result = handler(info, exc)
            if result is not None:
                await result
        except BaseException as handler_exc:
            self._log.error(
                "error_handler_failed", error=error_summary(handler_exc), **job_keys(job)
            )

    # --- helpers of one attempt ---

    def _encode_result(self, job: LeasedJob, result: Any) -> str | None:
        """The result as JSON. Whether it is kept is decided when the job completes (someone
        may start waiting for it while it runs), so every result is sent."""
        try:
            return encode_job_result(job, result)
        except PayloadError as exc:
            self._log.warning("job_result_not_stored", error=error_summary(exc), **job_keys(job))
            return None

    def _returned(self, a: Attempt) -> None:
        """The job function is done (returned, raised, or was abandoned)."""
        if a.running:
            a.running = False
            a.finished = self._loop.time()
            self.running -= 1
            if self.running == 0:
                self.all_done.set()
            self._on_returned()

    def _duration(self, a: Attempt) -> float:
        end = a.finished if a.finished is not None else self._loop.time()
        return round(end - a.started, 6)

    # --- what happens to attempts from outside ---

    async def complete(self, job: LeasedJob, result: object) -> bool:
        """``CurrentJob.complete()`` without a connection: completes the job in the next batch
        and waits until that is durable; False if the lease is gone."""
        a = self._by_token.get(job.token.int)
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
            self._finish(a, Settled(outcome="abandoned"))
            return
        exc = JobTimeoutError(
            f"job {job.name!r} did not stop within {self._grace} s of being cancelled ({why})"
        )
        written = self._batcher.fail(
            job, describe_error(exc), retry_delay(job.attempt, job.retry_backoff)
        )

        def recorded(done: asyncio.Future[Outcome]) -> None:
            # the error handler is not told: the job's own coroutine may still be running
            self._finish(a, failure(job, done.result(), exc, str(exc)))

        written.add_done_callback(recorded)

    def interrupt(self) -> int:
        """``stop()``'s timeout passed: cancels every async job still running and kills every
        process job (its lease goes back once it has stopped; an async job that ignores the
        cancellation is abandoned after the grace period). Returns how many thread jobs still
        run: those cannot be cancelled and keep their leases; they see
        ``current_job.stopping``, and one that raises then is handed back as interrupted (one
        that returns completes)."""
        threads = 0
        for a in list(self._by_token.values()):
            if not a.running or a.abandoned:
                continue
            a.job.stopping = True
            if not a.cancellable:
                a.interrupted = True
                threads += 1
            elif not a.interrupted and a.task is not None:
                a.interrupted = True
                a.task.cancel()
                self._arm(a, self._grace, "the runner stopped", record=False)
        return threads

    def cancel_requested(self, token: uuid.UUID) -> None:
        """Someone asked to cancel this running job: ``current_job.cancelled`` becomes true, and
        an async job's task is cancelled, a process job's process killed (a thread job must look
        at the flag)."""
        a = self._by_token.get(token.int)
        if a is None or a.settled:
            return
        if not a.job.cancelled:
            a.job.cancelled = True
            self._log.info("job_cancel_requested", **job_keys(a.job))
        if a.running and a.cancellable and not (a.cancelling or a.interrupted) and a.task:
            a.cancelling = True
            a.task.cancel()
            self._arm(a, self._grace, "a cancel request", record=True)

    def lease_lost(self, token: uuid.UUID) -> None:
        """The renewal found this lease gone."""
        a = self._by_token.get(token.int)
        if a is None or a.settled or a.job.completed:
            return
        job = a.job
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
        self._caller.shutdown()
