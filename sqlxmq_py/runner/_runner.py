"""The job runner: starts, wires and stops the parts that lease, run and settle jobs.

Parts, each on its own connection so that none waits for another:

- the lease loop (this module, its decisions in ``_pacing``): leases up to ``max - held`` jobs
  in one statement whenever fewer than ``min`` are held and there may be work;
- the attempts (``_attempts``): one coroutine per leased job, from lease to settled outcome;
- the batcher: writes completions, failures and hand-backs in batches;
- the lease keeper: renews every held lease in one statement, from a thread;
- the listener: LISTEN for wake-ups, checked now and then for deafness;
- the promoter and maintenance: make scheduled jobs ready, expire leases, spawn cron ticks.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Coroutine, Mapping
from datetime import timedelta
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool

from .._aio import wait_event, within
from .._connections import Rows
from .._logging import logger, redact_conninfo
from .._pooler import check_pooler
from ..cron import upsert_schedules
from ..embedded import resolve_dsn
from ..errors import ConfigurationError, LeaseLostError, SchemaError
from ..migrate import load_migrations
from ..sql import query
from ._attempts import Attempts
from ._batcher import Batcher
from ._config import RunnerConfig
from ._connection import DedicatedConnection, connect_kwargs
from ._execution import error_summary
from ._keepalive import LeaseKeeper
from ._leasing import PROMOTE_BATCH, Leaser
from ._listener import SCHEDULED_PAYLOAD, Listener
from ._maintenance import AttemptStats, maintain
from ._pacing import Pacer, promotion_delay

__all__ = ["Runner", "RunnerConfig"]

_HEARTBEAT_EVERY = 10.0
_LISTEN_CHECK_EVERY = 30.0
_LISTEN_CHECK_TIMEOUT = 2.0


class Runner:
    """A running job runner; applications hold it through ``JobRunnerHandle``."""

    def __init__(self, config: RunnerConfig) -> None:
        """Prepares a runner; ``start()`` begins work."""
        self._config = config
        self._registry = config.registry
        self._loop = asyncio.get_running_loop()
        self._id = uuid.uuid4()
        self._log: Any = logger.bind(runner_id=str(self._id))
        self._channel_names = None if config.channel_names is None else list(config.channel_names)
        self._pacer = Pacer(
            min_concurrency=config.min_concurrency,
            max_concurrency=config.max_concurrency,
            poll_interval=config.poll_interval,
            max_bytes=config.max_payload_bytes,
        )
        self._wake = asyncio.Event()
        self._promote_now = asyncio.Event()
        self._listening = asyncio.Event()
        self._stopping = False
        self._closed = False
        self._stop_deadline: float | None = None
        self._stopped = asyncio.Event()
        self._own_pool = False
        self._pool: AsyncConnectionPool[Any] | None = None
        self._background: dict[str, asyncio.Task[None]] = {}
        self._keeper: LeaseKeeper | None = None
        self._stats = AttemptStats()
        self._poll_error: str | None = None

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

    async def complete_job(self, job: Any, result: object = None) -> None:
        """Completes ``job`` in the next batch and waits until that batch is durable."""
        if not await self._attempts.complete(job, result):
            raise LeaseLostError(
                f"cannot complete job {job.id} ({job.name!r}, attempt {job.attempt}): it was "
                "already completed or failed, or its lease is gone (it expired and the job may "
                "be running elsewhere)"
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
        config = self._config
        self._registry.check()
        conninfo, kwargs = await self._connect_args()
        # one direct attempt first: a wrong password or database fails now, saying why (once
        # running, the runner keeps retrying instead: credentials may be fixed under it)
        probe = await psycopg.AsyncConnection.connect(conninfo, **connect_kwargs(kwargs))
        try:
            found = await check_pooler(probe)
        finally:
            await probe.close()
        pooled = found.found
        # a LISTEN through a transaction pooler lands on a server session it then never leaves,
        # and hears nothing: behind a pooler for sure, listen only where told to
        listen = not found.by_pid or config.listen_dsn is not None
        prepared = config.prepared_statements
        if prepared is None:
            prepared = not pooled
        if not prepared:
            kwargs["prepare_threshold"] = None
        if self._pool is None:
            self._pool = AsyncConnectionPool(
                conninfo,
                kwargs=kwargs,
                min_size=1,
                max_size=max(4, config.max_concurrency // 4),
                open=False,
                name="sqlxmq-runner",
                check=AsyncConnectionPool.check_connection,
            )
            await self._pool.open(wait=True)
            self._own_pool = True
        closing = self._is_closing
        self._lease_conn = DedicatedConnection(conninfo, kwargs, "lease", closing)
        self._done_conn = DedicatedConnection(conninfo, kwargs, "complete", closing)
        self._upkeep_conn = DedicatedConnection(conninfo, kwargs, "maintenance", closing)
        self._leaser = Leaser(
            self._lease_conn,
            runner_id=self._id,
            channel_names=self._channel_names,
            default_lease=config.default_lease,
            durable=config.durable_leases,
        )
        try:
            await self._check_schema()
            await self._leaser.set_idle(False)
            if self._registry.schedules:
                async with self.pool.connection() as conn, conn.transaction():
                    await upsert_schedules(conn, self._registry.schedules)
            await self._leaser.refresh_limits()
        except BaseException:
            await self._close()
            raise
        self._batcher = Batcher(self._done_conn, self._registry.retain_for)
        self._attempts = Attempts(
            registry=self._registry,
            batcher=self._batcher,
            host=self,
            hooks=config.hooks,
            stats=self._stats,
            cancel_grace=config.cancel_grace,
            max_threads=config.max_concurrency,
            log=self._log,
            on_free=self._slot_freed,
        )
        if config.keep_alive:
            self._keeper = LeaseKeeper(
                conninfo,
                kwargs,
                config.default_lease,
                self._attempts.held,
                self._leases_reported,
                self._renewed if config.hooks else None,
            )
            self._keeper.start()
        tasks: list[tuple[str, Coroutine[Any, Any, None]]] = []
        if listen:
            listen_conninfo = conninfo if config.listen_dsn is None else config.listen_dsn
            self._ping_channel = f"mq_ping_{self._id.hex}"
            self._listener = Listener(
                listen_conninfo,
                kwargs,
                self._channel_names,
                self._on_notify,
                self._on_listening,
                self._ping_channel,
            )
            tasks += [("listener", self._listener.run()), ("listen-check", self._listen_check())]
        else:
            self._pacer.set_deaf(True)
            self._log.warning(
                "listener_deaf",
                detail="behind a pooler, this runner does not LISTEN (a LISTEN through a "
                "transaction pooler stays on a server session and hears nothing): it polls "
                "instead; set_listen_dsn() can name a direct connection for LISTEN",
            )
        for name, coro in (
            *tasks,
            ("batcher", self._batcher.run()),
            ("maintenance", self._maintenance_loop()),
            ("promoter", self._promote_loop()),
            ("lease-loop", self._lease_loop()),
        ):
            self._background[name] = self._loop.create_task(coro, name=f"sqlxmq-{name}")
        self._log.info(
            "runner_started",
            database=redact_conninfo(conninfo),
            channel_names=self._channel_names,
            min_concurrency=config.min_concurrency,
            max_concurrency=config.max_concurrency,
            prepared_statements=prepared,
            behind_pooler=pooled,
            listening=listen,
        )

    async def _connect_args(self) -> tuple[str, dict[str, Any]]:
        """The connection string and arguments for the runner's own connections."""
        pool = self._config.pool
        if isinstance(pool, AsyncConnectionPool):
            self._pool = pool
            conninfo: Any = pool.conninfo
            if callable(conninfo):
                conninfo = conninfo()
                if asyncio.iscoroutine(conninfo):
                    conninfo = await conninfo
            kwargs: Any = pool.kwargs
            if callable(kwargs):
                kwargs = kwargs()
                if asyncio.iscoroutine(kwargs):
                    kwargs = await kwargs
            return str(conninfo), dict(kwargs or {})
        conninfo = resolve_dsn(pool)
        try:
            conninfo_to_dict(conninfo)
        except psycopg.ProgrammingError:
            # say nothing of its text: it may hold a password
            raise ConfigurationError("the connection string cannot be parsed") from None
        return conninfo, {}

    async def _check_schema(self) -> None:
        try:
            rows = await self._lease_conn.execute(query("migrations_applied"), writes=False)
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
        return self._attempts.running

    async def wait_jobs_finish(self, timeout: float | None = None) -> bool:
        """Waits until no job function is running; False if ``timeout`` passed first."""
        return await wait_event(self._attempts.all_done, timeout)

    async def stop(self, timeout: float | None = 30.0) -> None:
        """Stops leasing and lets running jobs finish for up to ``timeout`` seconds. Then async
        jobs are cancelled and their leases handed back once they have stopped (one that
        ignores the cancellation is abandoned after the cancel grace, its lease left to
        expire); thread jobs cannot be interrupted: they keep their leases, renewed, and settle
        when they return, and stop() waits for them."""
        if self._stopping:
            await self._stopped.wait()
            return
        self._stopping = True
        if timeout is not None:
            # past this, statements that fail for want of a database are not retried: outcomes
            # not written by then are left to the leases' expiry
            self._stop_deadline = self._loop.time() + timeout + 2 * self._config.cancel_grace
        self._log.info("runner_stopping", running_jobs=self._attempts.running)
        self._wake.set()
        for name in ("lease-loop", "promoter"):
            self._background[name].cancel()
        await asyncio.gather(
            self._background["lease-loop"], self._background["promoter"], return_exceptions=True
        )
        if not await self.wait_jobs_finish(timeout):
            await self.cancel_running()
        await self._attempts.all_settled.wait()
        with contextlib.suppress(Exception):
            await within(self._batcher.drained(), 10.0)
        with contextlib.suppress(Exception):
            await self._stats.flush(self._done_conn)
        if self._keeper is not None:
            await asyncio.to_thread(self._keeper.stop)
        for task in self._background.values():
            task.cancel()
        await asyncio.gather(*self._background.values(), return_exceptions=True)
        with contextlib.suppress(Exception):
            await self._leaser.unregister()
        await self._close()
        self._attempts.shutdown()
        self._log.info("runner_stopped")
        self._stopped.set()

    async def cancel_running(self) -> None:
        """Cancels the running async jobs now (their leases go back once they stop); thread
        jobs cannot be interrupted and run on."""
        threads = self._attempts.interrupt()
        self._log.warning("runner_cancelling_jobs", jobs=self._attempts.running - threads)
        if threads:
            self._log.warning(
                "runner_waiting_for_thread_jobs",
                jobs=threads,
                detail="thread jobs cannot be interrupted: their leases are kept until they return",
            )

    async def _close(self) -> None:
        self._closed = True
        for name in ("_lease_conn", "_done_conn", "_upkeep_conn"):
            conn = getattr(self, name, None)
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close()
        if self._own_pool and self._pool is not None:
            await self._pool.close()

    # --- the lease loop ---

    async def _lease_loop(self) -> None:
        pacer = self._pacer
        while not self._stopping:
            self._wake.clear()
            attempts = self._attempts
            plan = pacer.plan(self._loop.time(), len(attempts), attempts.held_bytes)
            if plan.want:
                await self._poll(plan.want, plan.max_bytes)
                continue
            await wait_event(self._wake, plan.wait)

    async def _poll(self, want: int, max_bytes: int) -> None:
        try:
            rows = await self._leaser.lease(want, max_bytes)
        except Exception as exc:
            wait = self._pacer.failed(self._loop.time())
            error = error_summary(exc)
            if error != self._poll_error:  # once per kind of failure, not once per retry
                self._log.error("poll_failed", error=error, retry_in_s=wait)
                self._poll_error = error
            return
        if self._poll_error is not None:
            self._log.info("poll_restored")
            self._poll_error = None
        unstarted = []
        for row in rows:
            try:
                self._attempts.start(row)
            except Exception as exc:  # never keep a lease that is not running: hand it back
                self._log.error("job_start_failed", job_id=str(row[0]), error=error_summary(exc))
                unstarted.append(row)
        if unstarted:
            await self._done_conn.execute(
                query("release"),
                {"ids": [r[0] for r in unstarted], "tokens": [r[1] for r in unstarted]},
            )
        if rows and self._keeper is not None:
            self._keeper.leased(min(row[6] for row in rows))
        self._log.debug("polled", leased=len(rows), wanted=want)
        if self._config.hooks:
            self._hook("polled", len(rows), want)
        announce = self._pacer.polled(self._loop.time(), len(rows), want, self._leaser.idle)
        if announce is not None:
            try:
                await self._leaser.set_idle(announce)
            except Exception as exc:
                self._log.warning("announce_failed", error=error_summary(exc))

    def _slot_freed(self, channel_name: str) -> None:
        if channel_name in self._leaser.limits:
            # its channel's limit may have been all that held other jobs back
            self._pacer.notified()
        self._wake.set()

    def _on_notify(self, payload: str) -> None:
        self._pacer.notified()
        if payload == SCHEDULED_PAYLOAD:
            self._promote_now.set()
        self._wake.set()

    def _on_listening(self) -> None:
        self._pacer.notified()
        self._promote_now.set()
        self._listening.set()
        self._wake.set()

    def _hook(self, event: str, *args: Any) -> None:
        for hooks in self._config.hooks:
            try:
                getattr(hooks, event)(*args)
            except Exception as exc:
                self._log.error(
                    "hook_failed", hook=type(hooks).__name__, hook_event=event, error=repr(exc)
                )

    # --- scheduled jobs ---

    async def _promote_loop(self) -> None:
        """Makes due scheduled jobs ready, apart from the lease path: when the next one of the
        runner's channels is due, when a delayed job is spawned, and at least every poll
        interval; one runner at a time (the others skip while one is promoting)."""
        interval = self._config.poll_interval
        failures = 0
        while True:
            self._promote_now.clear()
            try:
                promoted, wait = await self._leaser.promote()
                failures = 0
            except Exception as exc:
                failures += 1
                if failures == 1:
                    self._log.warning("promote_failed", error=error_summary(exc))
                delay = min(5.0, 0.05 * 2 ** min(failures, 10))
            else:
                if promoted:
                    self._pacer.notified()
                    self._wake.set()
                delay = promotion_delay(
                    promoted is not None and promoted >= PROMOTE_BATCH, wait, interval
                )
            if delay > 0:
                await wait_event(self._promote_now, delay)

    # --- lease keeping (called from the keeper's thread) ---

    def _renewed(self, renewed: int, lost: int) -> None:
        self._hook("leases_renewed", renewed, lost)

    def _leases_reported(self, lost: list[uuid.UUID], cancelled: list[uuid.UUID]) -> None:
        """The keeper's report, by lease token."""
        with contextlib.suppress(RuntimeError):  # the loop has closed: nothing left to tell
            self._loop.call_soon_threadsafe(self._mark_reported, lost, cancelled)

    def _mark_reported(self, lost: list[uuid.UUID], cancelled: list[uuid.UUID]) -> None:
        for token in lost:
            self._attempts.lease_lost(token)
        for token in cancelled:
            self._attempts.cancel_requested(token)

    # --- the listener's health ---

    async def _listen_check(self) -> None:
        """Checks now and then that notifications arrive; a deaf listener (a transaction
        pooler between the runner and PostgreSQL, say) makes the runner poll adaptively and
        stop announcing itself idle, so that nobody sends it notifications into the void."""
        deaf = False
        while True:
            await self._listening.wait()
            self._listening.clear()
            try:
                heard = await self._listener.probe(self._send_ping, _LISTEN_CHECK_TIMEOUT)
            except Exception as exc:
                self._log.debug("listen_check_failed", error=error_summary(exc))
                heard = False
            if heard == deaf:  # a change
                deaf = not heard
                self._pacer.set_deaf(deaf)
                self._wake.set()
                if deaf:
                    self._log.warning(
                        "listener_deaf",
                        detail="notifications sent to this runner do not arrive (a transaction "
                        "pooler?): it polls instead; set_listen_dsn() can name a direct "
                        "connection for LISTEN",
                    )
                else:
                    self._log.info("listener_hears")
            await wait_event(self._listening, _LISTEN_CHECK_EVERY)
            self._listening.set()

    async def _send_ping(self, payload: str) -> None:
        await self._upkeep_conn.execute(
            query("ping"), {"channel": self._ping_channel, "payload": payload}
        )

    # --- maintenance ---

    async def _maintenance_loop(self) -> None:
        next_heartbeat = self._loop.time() + _HEARTBEAT_EVERY
        failing = False
        while True:
            await asyncio.sleep(self._config.maintenance_interval)
            try:
                await self._leaser.refresh_limits()
                await maintain(self._upkeep_conn, self._log)
                # parked jobs of the names this runner knows may run now
                await self._upkeep_conn.execute(
                    query("unpark"), {"names": sorted(self._registry.names)}
                )
                await self._stats.flush(self._done_conn)
                if self._loop.time() >= next_heartbeat and self._leaser.idle is not None:
                    await self._leaser.set_idle(self._leaser.idle)
                    next_heartbeat = self._loop.time() + _HEARTBEAT_EVERY
            except Exception as exc:
                if not failing:
                    self._log.warning("maintenance_failed", error=error_summary(exc))
                failing = True
            else:
                if failing:
                    self._log.info("maintenance_restored")
                failing = False
