"""The job runner: leases jobs, runs them, and records how each attempt ended.

Parts, each on its own connection so that none waits for another:

- the lease loop (this module): leases up to ``max - held`` jobs in one statement whenever fewer
  than ``min`` are held and there may be work (a notification, a full last batch, a timer);
- the batcher: writes completions and failures in batches;
- the lease keeper: renews every held lease in one statement, from a thread;
- the listener: LISTEN for wake-ups;
- maintenance: expires leases and two-phase jobs, unblocks ordered chains (one runner at a time).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool

from .._connections import Rows
from .._logging import logger, redact_conninfo
from ..backoff import retry_delay
from ..cron import upsert_schedules
from ..current_job import BlockingCurrentJob, CurrentJob, LeasedJob
from ..embedded import resolve_dsn
from ..errors import (
    ConfigurationError,
    LeaseLostError,
    PayloadError,
    SchemaError,
    UnknownJobError,
)
from ..hooks import JobOutcome
from ..migrate import load_migrations
from ..payload import encode_json
from ..sql import query
from ._batcher import Batcher, Completion, Failure
from ._config import RunnerConfig
from ._connection import DedicatedConnection, connect_kwargs
from ._execution import call_async, call_thread, describe_error, job_keys
from ._keepalive import HeldLease, LeaseKeeper
from ._leasing import PROMOTE_BATCH, Leaser
from ._listener import SCHEDULED_PAYLOAD, Listener
from ._maintenance import AttemptStats, maintain

if TYPE_CHECKING:
    from ..job import NamedJob

__all__ = ["Runner", "RunnerConfig"]

_HEARTBEAT_EVERY = 10.0
MISSING_PAYLOAD = "sqlxmq:missing-payload"
"""The name the lease statement gives a job whose mq_payloads row is missing."""


@dataclass(slots=True, eq=False)
class _Slot:
    """A lease the runner holds, from lease until the job has returned and its outcome is
    written (``settled``)."""

    job: LeasedJob
    started: float
    task: asyncio.Task[None] | None = None
    finished: float | None = None
    running: bool = True
    finishing: bool = False
    settled: bool = False


async def _connect_args(pool: AsyncConnectionPool[Any]) -> tuple[str, dict[str, Any]]:
    """The connection string and arguments of a pool, for the runner's own connections."""
    conninfo = pool.conninfo
    if callable(conninfo):
        conninfo = await _maybe_await(conninfo())
    kwargs = pool.kwargs
    if callable(kwargs):
        kwargs = await _maybe_await(kwargs())
    return str(conninfo), dict(kwargs or {})


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


class Runner:
    """A running job runner; applications hold it through ``JobRunnerHandle``."""

    def __init__(self, config: RunnerConfig) -> None:
        """Prepares a runner; ``start()`` begins work."""
        self._config = config
        self._registry = config.registry
        self._loop = asyncio.get_running_loop()
        self._id = uuid.uuid4()
        self._log: Any = logger.bind(runner_id=str(self._id))
        # per-job events are built only when they would be logged (the keys cost more than the
        # rest of a no-op job's bookkeeping)
        enabled = getattr(self._log, "is_enabled_for", None)
        self._log_debug = enabled is None or bool(enabled(logging.DEBUG))
        self._log_info = enabled is None or bool(enabled(logging.INFO))
        self._channel_names = None if config.channel_names is None else list(config.channel_names)
        # by lease token: a job leased again while a stale attempt of it still runs has two
        self._slots: dict[uuid.UUID, _Slot] = {}
        self._executing = 0
        self._all_done = asyncio.Event()
        self._all_done.set()
        self._wake = asyncio.Event()
        self._stopping = False
        self._closed = False
        self._stop_deadline: float | None = None
        self._stopped = asyncio.Event()
        self._poll_pending = True
        self._promote_at = 0.0
        self._poll_deadline = 0.0
        self._threads: ThreadPoolExecutor | None = None
        self._own_pool = False
        self._pool: AsyncConnectionPool[Any] | None = None
        self._background: list[asyncio.Task[None]] = []
        self._keeper: LeaseKeeper | None = None
        self._stats = AttemptStats()

    # --- hooks ---

    def _hook(self, event: str, *args: Any) -> None:
        for hooks in self._config.hooks:
            try:
                getattr(hooks, event)(*args)
            except Exception as exc:
                self._log.error(
                    "hook_failed", hook=type(hooks).__name__, hook_event=event, error=repr(exc)
                )

    def _finished(self, job: LeasedJob, outcome: JobOutcome, duration: float | None) -> None:
        self._stats.add(job.channel_name, outcome)
        if self._config.hooks:
            self._hook("job_finished", CurrentJob(job, self), outcome, duration)

    # --- what jobs use (JobHost) ---

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the runner runs on."""
        return self._loop

    @property
    def pool(self) -> AsyncConnectionPool[Any]:
        """The runner's connection pool."""
        assert self._pool is not None, "the runner has not started"
        return self._pool

    @property
    def default_retain(self) -> timedelta:
        """How long completed jobs are kept when they do not say."""
        return self._registry.retain_for

    async def complete_job(self, job: LeasedJob, result: object = None) -> None:
        """Completes ``job`` in the next batch and waits until that batch is durable."""
        slot = self._slots.get(job.token)
        if slot is None or slot.settled or slot.finishing:
            raise LeaseLostError(f"job {job.id} ({job.name!r}) was already completed or failed")
        encoded = None if result is None else encode_json(result)
        waiter: asyncio.Future[bool] = self._loop.create_future()
        slot.finishing = True
        self._batcher.complete(job, waiter, encoded)
        if not await waiter:
            raise LeaseLostError(
                f"cannot complete job {job.id} ({job.name!r}, attempt {job.attempt}): its lease "
                "is gone (it expired and the job may be running elsewhere)"
            )

    async def execute(self, query: bytes, params: Mapping[str, object]) -> Rows:
        """Runs one statement on the runner's completion connection."""
        return await self._done_conn.execute(query, params)

    # --- lifecycle ---

    def _is_closing(self) -> bool:
        return self._closed or (
            self._stop_deadline is not None and self._loop.time() > self._stop_deadline
        )

    async def start(self) -> None:
        """Connects, checks the schema and starts leasing.

        Raises:
            SchemaError: the database has no (or an outdated) sqlxmq_py schema.
        """
        pool = self._config.pool
        if isinstance(pool, AsyncConnectionPool):
            self._pool = pool
        else:
            conninfo = resolve_dsn(pool)
            try:
                conninfo_to_dict(conninfo)
            except psycopg.ProgrammingError:
                # say nothing of its text: it may hold a password
                raise ConfigurationError("the connection string cannot be parsed") from None
            self._pool = AsyncConnectionPool(
                conninfo,
                min_size=1,
                max_size=max(4, self._config.max_concurrency // 4),
                open=False,
                name="sqlxmq-runner",
                check=AsyncConnectionPool.check_connection,
            )
        conninfo, kwargs = await _connect_args(self._pool)
        # one direct attempt first: a wrong password or database fails now, saying why (once
        # running, the runner keeps retrying instead: credentials may be fixed under it)
        probe = await psycopg.AsyncConnection.connect(conninfo, **connect_kwargs(kwargs))
        await probe.close()
        if not isinstance(pool, AsyncConnectionPool):
            await self._pool.open(wait=True)
            self._own_pool = True
        self._lease_conn = DedicatedConnection(conninfo, kwargs, "lease", self._is_closing)
        self._done_conn = DedicatedConnection(conninfo, kwargs, "complete", self._is_closing)
        self._leaser = Leaser(
            self._lease_conn,
            runner_id=self._id,
            channel_names=self._channel_names,
            default_lease=self._config.default_lease,
            durable=self._config.durable_leases,
        )
        try:
            await self._check_schema()
            await self._leaser.set_idle(False)
            if self._registry.schedules:
                async with self.pool.connection() as conn, conn.transaction():
                    await upsert_schedules(conn, self._registry.schedules)
            await self._leaser.refresh_limits()
        except BaseException:
            await self._close_connections()
            raise
        self._batcher = Batcher(
            self._done_conn, self._on_completed, self._on_failed, self._registry.retain_for
        )
        if self._config.keep_alive:
            self._keeper = LeaseKeeper(
                conninfo,
                kwargs,
                self._config.default_lease,
                self._held,
                self._leases_reported,
                self._renewed if self._config.hooks else None,
            )
            self._keeper.start()
        listener = Listener(
            conninfo, kwargs, self._channel_names, self._on_notify, self._on_listening
        )
        for name, coro in (
            ("listener", listener.run()),
            ("batcher", self._batcher.run()),
            ("maintenance", self._maintenance_loop()),
            ("lease-loop", self._lease_loop()),
        ):
            self._background.append(self._loop.create_task(coro, name=f"sqlxmq-{name}"))
        self._log.info(
            "runner_started",
            database=redact_conninfo(conninfo),
            channel_names=self._channel_names,
            min_concurrency=self._config.min_concurrency,
            max_concurrency=self._config.max_concurrency,
        )

    async def _check_schema(self) -> None:
        try:
            rows = await self._lease_conn.execute(query("migrations_applied"))
        except psycopg.errors.UndefinedTable as exc:
            raise SchemaError(
                "the database has no sqlxmq_py schema: run sqlxmq_py.migrate(conn) first"
            ) from exc
        applied = {name for name, _ in rows}
        missing = [m.name for m in load_migrations() if m.name not in applied]
        if missing:
            raise SchemaError(
                f"the database schema is behind this version of sqlxmq_py (missing {missing}): "
                "run sqlxmq_py.migrate(conn)"
            )

    def num_running_jobs(self) -> int:
        """How many job functions are running now."""
        return self._executing

    async def wait_jobs_finish(self, timeout: float | None = None) -> bool:
        """Waits until no job function is running; False if ``timeout`` passed first."""
        try:
            await asyncio.wait_for(self._all_done.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def stop(self, timeout: float | None = 30.0) -> None:
        """Stops leasing, lets running jobs finish for up to ``timeout`` seconds, then cancels
        the rest and hands their leases back without using up an attempt."""
        if self._stopping:
            await self._stopped.wait()
            return
        self._stopping = True
        grace = 10.0 if timeout is None else timeout + 10.0
        self._stop_deadline = None if timeout is None else self._loop.time() + grace
        self._log.info("runner_stopping", running_jobs=self._executing)
        self._wake.set()
        lease_loop = self._background[-1]
        with suppress(Exception):
            await lease_loop
        if not await self.wait_jobs_finish(timeout):
            await self._cancel_running()
        with suppress(Exception):
            await asyncio.wait_for(self._batcher.drained(), grace)
        await self._release_unsettled()
        with suppress(Exception):
            await self._stats.flush(self._done_conn)
        if self._keeper is not None:
            await asyncio.to_thread(self._keeper.stop)
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        with suppress(Exception):
            await self._leaser.unregister()
        self._closed = True
        await self._close_connections()
        if self._threads is not None:
            self._threads.shutdown(wait=False, cancel_futures=True)
        if self._own_pool and self._pool is not None:
            await self._pool.close()
        self._log.info("runner_stopped")
        self._stopped.set()

    async def _close_connections(self) -> None:
        for conn in (self._lease_conn, self._done_conn):
            with suppress(Exception):
                await conn.close()

    async def cancel_running(self) -> None:
        """Cancels the running job functions now (``stop()`` hands their leases back)."""
        await self._cancel_running()

    async def _cancel_running(self) -> None:
        tasks = [s.task for s in self._slots.values() if s.running and s.task is not None]
        self._log.warning("runner_cancelling_jobs", jobs=len(tasks))
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _release_unsettled(self) -> None:
        slots = [s for s in self._slots.values() if not s.settled and not s.finishing]
        if not slots:
            return
        try:
            rows = await self._done_conn.execute(
                query("release"),
                {"ids": [s.job.id for s in slots], "tokens": [s.job.token for s in slots]},
            )
        except Exception as exc:
            self._log.error("release_failed", error=str(exc).strip(), jobs=len(slots))
            return
        released = {row[0] for row in rows}
        for slot in slots:
            slot.settled = True
            if slot.job.id in released:
                self._log.warning("job_released", **job_keys(slot.job))
                self._finished(slot.job, "released", self._duration(slot))

    # --- the lease loop ---

    async def _lease_loop(self) -> None:
        while not self._stopping:
            self._wake.clear()
            now = self._loop.time()
            timeout: float | None = None
            if len(self._slots) < self._config.min_concurrency:
                if now >= self._poll_deadline:
                    self._poll_pending = True
                if self._poll_pending or now >= self._promote_at:
                    try:
                        await self._poll()
                    except Exception as exc:
                        self._log.error("poll_failed", error=str(exc).strip())
                        self._poll_deadline = self._loop.time() + 1.0
                        self._poll_pending = False
                    continue
                timeout = max(0.0, min(self._poll_deadline, self._promote_at) - now)
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _poll(self) -> None:
        interval = self._config.poll_interval
        if self._loop.time() >= self._promote_at:
            promoted, wait = await self._leaser.promote()
            now = self._loop.time()
            self._promote_at = now + (interval if wait is None else min(wait, interval))
            if promoted >= PROMOTE_BATCH:
                self._promote_at = now
        want = self._config.max_concurrency - len(self._slots)
        leased = await self._leaser.lease(want, self._start_all)
        self._poll_deadline = self._loop.time() + interval
        self._log.debug("polled", leased=leased, wanted=want)
        if self._config.hooks:
            self._hook("polled", leased, want)
        if leased >= want:
            self._poll_pending = True
            if self._leaser.idle is not False:
                await self._leaser.set_idle(False)
        elif self._leaser.idle is not True:
            # poll once more after announcing idleness: a spawn that looked before the
            # announcement did not notify, but is visible to that poll
            await self._leaser.set_idle(True)
            self._poll_pending = True
        else:
            self._poll_pending = False

    async def _start_all(self, rows: Rows) -> None:
        unstarted = []
        for row in rows:
            try:
                self._start(row)
            except Exception as exc:  # never keep a lease we cannot run: hand it back
                self._log.error("job_start_failed", job_id=str(row[0]), error=repr(exc))
                unstarted.append(row)
        if unstarted:
            await self._done_conn.execute(
                query("release"),
                {"ids": [r[0] for r in unstarted], "tokens": [r[1] for r in unstarted]},
            )
        if rows and self._keeper is not None:
            self._keeper.leased(min(row[6] for row in rows))

    def _on_notify(self, payload: str) -> None:
        self._poll_pending = True
        if payload == SCHEDULED_PAYLOAD:
            self._promote_at = 0.0
        self._wake.set()

    def _on_listening(self) -> None:
        self._poll_pending = True
        self._promote_at = 0.0
        self._wake.set()

    # --- running jobs ---

    def _start(self, row: tuple[Any, ...]) -> None:
        (job_id, token, attempt, max_attempts, cname, cargs, lease, name, pjson, pbytes, backoff,
         key, retain_for, headers) = row  # fmt: skip
        job = LeasedJob(
            job_key=key,
            retain_for=retain_for,
            headers=headers,
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
        )
        slot = _Slot(job, self._loop.time())
        self._slots[token] = slot
        self._executing += 1
        self._all_done.clear()
        slot.task = self._loop.create_task(self._run(slot))

    def _executor(self) -> ThreadPoolExecutor:
        if self._threads is None:
            self._threads = ThreadPoolExecutor(
                max_workers=self._config.max_concurrency, thread_name_prefix="sqlxmq-job"
            )
        return self._threads

    async def _run(self, slot: _Slot) -> None:
        job = slot.job
        info = CurrentJob(job, self)
        if self._log_debug:
            self._log.debug("job_started", **job_keys(job))
        try:
            if job.name == MISSING_PAYLOAD:
                raise PayloadError(
                    f"job {job.id} has no row in mq_payloads (written by hand without one?): "
                    "it cannot run"
                )
            named = self._registry.get(job.name)
            if named is None:
                known = sorted(self._registry.names)
                shown = ", ".join(map(repr, known[:20])) + (", …" if len(known) > 20 else "")
                raise UnknownJobError(
                    f"no job named {job.name!r} is registered with this runner "
                    f"({len(known)} registered: {shown})"
                )
            kwargs = self._registry.context_for(named)
            timeout = named.options.timeout
            with contextlib.ExitStack() as wrappers:
                if self._config.hooks:
                    self._hook("job_started", info)
                    for hooks in self._config.hooks:
                        wrappers.enter_context(hooks.running(info))
                if named.is_async:
                    result = await call_async(named, info, kwargs, timeout)
                else:
                    result = await call_thread(
                        named,
                        BlockingCurrentJob(job, self),
                        kwargs,
                        timeout,
                        self._executor(),
                        lambda: self._log.warning(
                            "job_timed_out",
                            timeout_s=timeout and timeout.total_seconds(),
                            **job_keys(job),
                        ),
                    )
        except asyncio.CancelledError as exc:
            if not self._stopping:  # the job cancelled itself: a failed attempt
                await self._record_failure(slot, info, exc)
            # when stopping, stop() hands the lease back
        except BaseException as exc:
            await self._record_failure(slot, info, exc)
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
        else:
            self._record_return(slot, named, result)
        finally:
            slot.running = False
            self._executing -= 1
            if self._executing == 0:
                self._all_done.set()
            self._free_if_done(slot)

    def _record_return(self, slot: _Slot, named: NamedJob[..., Any], result: Any) -> None:
        job = slot.job
        slot.finished = self._loop.time()
        if job.completed and not slot.finishing:
            # completed inside the job's own transaction
            slot.settled = True
            if self._log_info:
                self._log.info("job_completed", duration_s=self._duration(slot), **job_keys(job))
            self._finished(job, "completed", self._duration(slot))
        elif slot.finishing or slot.settled:
            pass  # complete() was called: its batch reports the outcome
        elif named.options.auto_complete:
            slot.finishing = True
            self._batcher.complete(job, result=self._encode_result(job, result))
        else:
            slot.settled = True
            self._log.warning(
                "job_returned_without_completing",
                detail="auto_complete=False: the job runs again when its lease expires",
                **job_keys(job),
            )
            self._finished(job, "abandoned", self._duration(slot))

    def _encode_result(self, job: LeasedJob, result: Any) -> str | None:
        """The result as JSON. Whether it is kept is decided when the job completes (someone
        may start waiting for it while it runs), so every result is sent."""
        if result is None:
            return None
        try:
            return encode_json(result)
        except PayloadError as exc:
            self._log.warning("job_result_not_stored", error=str(exc), **job_keys(job))
            return None

    async def _record_failure(self, slot: _Slot, info: CurrentJob, exc: BaseException) -> None:
        job = slot.job
        slot.finished = self._loop.time()
        if job.completed or slot.finishing or slot.settled:
            self._log.warning(
                "job_raised_after_completing",
                error=f"{type(exc).__name__}: {exc}",
                **job_keys(job),
            )
        else:
            slot.finishing = True
            delay = retry_delay(job.attempt, job.retry_backoff)
            self._batcher.fail(job, describe_error(exc), delay, exc)
        handler = self._registry.error_handler
        if handler is not None:
            try:
                result = handler(info, exc)
                if result is not None:
                    await result
            except Exception as handler_exc:
                self._log.error("error_handler_failed", error=str(handler_exc), **job_keys(job))

    def _free_if_done(self, slot: _Slot) -> None:
        if slot.settled and not slot.running and self._slots.get(slot.job.token) is slot:
            del self._slots[slot.job.token]
            if slot.job.channel_name in self._leaser.limits:
                # its channel's limit may have been all that held other jobs back
                self._poll_pending = True
            if len(self._slots) < self._config.min_concurrency:
                self._wake.set()

    def _duration(self, slot: _Slot) -> float:
        end = slot.finished if slot.finished is not None else self._loop.time()
        return round(end - slot.started, 6)

    # --- outcomes reported by the batcher ---

    def _on_completed(self, item: Completion, deleted: bool) -> None:
        job = item.job
        slot = self._slots.get(job.token)
        duration = self._duration(slot) if slot is not None else None
        if deleted:
            job.completed = True
            if self._log_info:
                self._log.info("job_completed", duration_s=duration, **job_keys(job))
        else:
            job.lease_lost = True
            self._log.warning("lease_lost", action="complete", **job_keys(job))
        self._finished(job, "completed" if deleted else "lease_lost", duration)
        if item.waiter is not None and not item.waiter.done():
            item.waiter.set_result(deleted)
        if slot is not None:
            slot.settled = True
            self._free_if_done(slot)

    def _on_failed(self, item: Failure, state: str | None) -> None:
        job = item.job
        keys = job_keys(job)
        error = f"{type(item.exc).__name__}: {item.exc}"
        slot = self._slots.get(job.token)
        outcome: JobOutcome
        if state is None:
            job.lease_lost = True
            outcome = "lease_lost"
            self._log.warning("lease_lost", action="fail", error=error, **keys)
        elif state == "c":
            job.cancelled = True
            outcome = "cancelled"
            self._log.warning("job_cancelled", error=error, **keys)
        elif state == "f":
            outcome = "failed"
            self._log.error(
                "job_failed", final=True, error=error, max_attempts=job.max_attempts, **keys
            )
        else:
            outcome = "retrying"
            retry_in = 0.0 if state == "r" else round(item.delay.total_seconds(), 3)
            self._log.warning("job_failed", final=False, error=error, retry_in_s=retry_in, **keys)
        self._finished(job, outcome, self._duration(slot) if slot is not None else None)
        if slot is not None:
            slot.settled = True
            self._free_if_done(slot)

    # --- lease keeping (called from the keeper's thread) ---

    def _held(self) -> list[HeldLease]:
        slots = self._slots.copy()
        return [
            (s.job.id, s.job.token, s.job.lease)
            for s in slots.values()
            if not s.settled and not s.job.lease_lost and not s.job.completed
        ]

    def _renewed(self, renewed: int, lost: int) -> None:
        self._hook("leases_renewed", renewed, lost)

    def _leases_reported(self, lost: list[uuid.UUID], cancelled: list[uuid.UUID]) -> None:
        """The keeper's report, by lease token."""
        with suppress(RuntimeError):  # the loop has closed: nothing left to tell
            self._loop.call_soon_threadsafe(self._mark_reported, lost, cancelled)

    def _mark_reported(self, lost: list[uuid.UUID], cancelled: list[uuid.UUID]) -> None:
        self._mark_lost(lost)
        for token in cancelled:
            slot = self._slots.get(token)
            if slot is not None and not slot.job.cancelled:
                slot.job.cancelled = True
                self._log.info("job_cancel_requested", **job_keys(slot.job))

    def _mark_lost(self, tokens: list[uuid.UUID]) -> None:
        for token in tokens:
            slot = self._slots.get(token)
            if slot is None or slot.settled or slot.finishing or slot.job.completed:
                continue
            slot.job.lease_lost = True
            self._log.warning("lease_lost", action="renew", **job_keys(slot.job))

    # --- maintenance ---

    async def _maintenance_loop(self) -> None:
        next_heartbeat = self._loop.time() + _HEARTBEAT_EVERY
        while True:
            await asyncio.sleep(self._config.maintenance_interval)
            try:
                await self._leaser.refresh_limits()
                async with self.pool.connection() as conn:
                    await maintain(conn, self._log)
                await self._stats.flush(self._done_conn)
                if self._loop.time() >= next_heartbeat and self._leaser.idle is not None:
                    await self._leaser.set_idle(self._leaser.idle)
                    next_heartbeat = self._loop.time() + _HEARTBEAT_EVERY
            except Exception as exc:
                self._log.warning("maintenance_failed", error=str(exc).strip())
