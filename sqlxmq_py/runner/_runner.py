"""The job runner: starts, wires and stops the parts that lease, run and settle jobs.

Parts, each on its own connection so that none waits for another:

- the lease loop (``_lease_loop``, its decisions in ``_pacing``): leases up to ``max - held``
  jobs in one statement whenever fewer than ``min`` are held and there may be work, and the
  promoter that makes scheduled jobs ready;
- the attempts (``_attempts``): one coroutine per leased job, from lease to settled outcome;
- the batcher: writes completions, failures and hand-backs in batches;
- the lease keeper: renews every held lease in one statement, from a thread;
- the listener: LISTEN for wake-ups, checked now and then for deafness (``_upkeep``);
- maintenance (``_upkeep``): expires leases, spawns cron ticks, unparks, counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Coroutine, Mapping
from datetime import timedelta
from typing import Any

from psycopg_pool import AsyncConnectionPool

from .._aio import wait_event, within
from .._connections import Rows
from .._logging import logger, redact_conninfo
from ..cron import upsert_schedules
from ..errors import LeaseLostError
from ..rate_limit import write_rate_limits
from ..sql import query
from ._attempts import Attempts
from ._batcher import Batcher
from ._config import RunnerConfig
from ._connection import DedicatedConnection
from ._hookset import HookSet
from ._keepalive import LeaseKeeper
from ._lease_loop import LeaseLoop
from ._leasing import Leaser
from ._listener import Listener
from ._maintenance import AttemptStats
from ._pacing import Pacer
from ._startup import check_schema, connect_args, plan_connections, probe_pooler
from ._upkeep import listen_check_loop, maintenance_loop

__all__ = ["Runner", "RunnerConfig"]


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
        self._hooks = HookSet(config.hooks, self._log)
        self._stopping = False
        self._closed = False
        self._stop_deadline: float | None = None
        self._stopped = asyncio.Event()
        self._own_pool = False
        self._pool: AsyncConnectionPool[Any] | None = None
        self._background: dict[str, asyncio.Task[None]] = {}
        self._keeper: LeaseKeeper | None = None
        self._stats = AttemptStats()

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

    # --- starting: connect, check, wire ---

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
        if isinstance(config.pool, AsyncConnectionPool):
            self._pool = config.pool
        conninfo, kwargs = await connect_args(config.pool)
        plan = plan_connections(await probe_pooler(conninfo, kwargs), config)
        if not plan.prepared:
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
            concurrency=(config.min_concurrency, config.max_concurrency),
        )
        try:
            await check_schema(self._lease_conn)
            await self._leaser.set_idle(False)
            if self._registry.schedules:
                async with self.pool.connection() as conn, conn.transaction():
                    await upsert_schedules(conn, self._registry.schedules)
            if self._registry.rate_limits:
                async with self.pool.connection() as conn, conn.transaction():
                    await write_rate_limits(conn, self._registry.rate_limits)
            await self._leaser.refresh_limits()
        except BaseException:
            await self._close()
            raise
        self._wire(conninfo, kwargs, plan.listen)
        self._log.info(
            "runner_started",
            database=redact_conninfo(conninfo),
            channel_names=self._channel_names,
            min_concurrency=config.min_concurrency,
            max_concurrency=config.max_concurrency,
            prepared_statements=plan.prepared,
            behind_pooler=plan.pooled,
            listening=plan.listen,
        )

    def _wire(self, conninfo: str, kwargs: dict[str, Any], listen: bool) -> None:
        """Builds the parts, connects their news to each other, and starts their tasks."""
        config = self._config
        pacer = Pacer(
            min_concurrency=config.min_concurrency,
            max_concurrency=config.max_concurrency,
            poll_interval=config.poll_interval,
            max_bytes=config.max_payload_bytes,
        )
        self._lease_loop = leasing = LeaseLoop(
            pacer=pacer,
            leaser=self._leaser,
            done=self._done_conn,
            hooks=self._hooks,
            poll_interval=config.poll_interval,
            log=self._log,
        )
        self._batcher = Batcher(self._done_conn, self._registry.retain_for)
        self._attempts = Attempts(
            registry=self._registry,
            batcher=self._batcher,
            host=self,
            hooks=self._hooks,
            stats=self._stats,
            cancel_grace=config.cancel_grace,
            max_threads=config.max_concurrency,
            processes=config.processes,
            log=self._log,
            on_free=leasing.slot_freed,
            on_returned=leasing.function_returned,
        )
        if config.keep_alive:
            self._keeper = LeaseKeeper(
                conninfo,
                kwargs,
                config.default_lease,
                self._attempts.held,
                self._leases_reported,
                self._renewed if self._hooks else None,
            )
            self._keeper.start()
        tasks: list[tuple[str, Coroutine[Any, Any, None]]] = []
        if listen:
            self._ping_channel = f"mq_ping_{self._id.hex}"
            listening = asyncio.Event()

            def connected() -> None:
                leasing.listening()
                listening.set()

            listener = Listener(
                conninfo if config.listen_dsn is None else config.listen_dsn,
                kwargs,
                self._channel_names,
                leasing.notified,
                connected,
                self._ping_channel,
            )
            check = listen_check_loop(
                listener=listener,
                listening=listening,
                send_ping=self._send_ping,
                on_deaf=leasing.set_deaf,
                log=self._log,
            )
            tasks += [("listener", listener.run()), ("listen-check", check)]
        else:
            pacer.set_deaf(True)
            self._log.warning(
                "listener_deaf",
                detail="behind a pooler, this runner does not LISTEN (a LISTEN through a "
                "transaction pooler stays on a server session and hears nothing): it polls "
                "instead; set_listen_dsn() can name a direct connection for LISTEN",
            )
        maintenance = maintenance_loop(
            interval=config.maintenance_interval,
            leaser=self._leaser,
            upkeep=self._upkeep_conn,
            done=self._done_conn,
            names=self._registry.names,
            stats=self._stats,
            on_loosened=leasing.limits_loosened,
            log=self._log,
        )
        for name, coro in (
            *tasks,
            ("batcher", self._batcher.run()),
            ("maintenance", maintenance),
            ("promoter", leasing.promote()),
            ("lease-loop", leasing.run(self._attempts, self._keeper)),
        ):
            self._background[name] = self._loop.create_task(coro, name=f"sqlxmq-{name}")

    async def _send_ping(self, payload: str) -> None:
        await self._upkeep_conn.execute(
            query("ping"), {"channel": self._ping_channel, "payload": payload}
        )

    # --- what the lease keeper reports (from its thread) ---

    def _renewed(self, renewed: int, lost: int) -> None:
        self._hooks.call("leases_renewed", renewed, lost)

    def _leases_reported(self, lost: list[uuid.UUID], cancelled: list[uuid.UUID]) -> None:
        """The keeper's report, by lease token."""
        with contextlib.suppress(RuntimeError):  # the loop has closed: nothing left to tell
            self._loop.call_soon_threadsafe(self._mark_reported, lost, cancelled)

    def _mark_reported(self, lost: list[uuid.UUID], cancelled: list[uuid.UUID]) -> None:
        for token in lost:
            self._attempts.lease_lost(token)
        for token in cancelled:
            self._attempts.cancel_requested(token)

    # --- observing and stopping ---

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
        self._lease_loop.stop()
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
                detail="thread jobs cannot be cancelled: their leases are kept until they return "
                "(one that raises once current_job.stopping is true is handed back)",
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
