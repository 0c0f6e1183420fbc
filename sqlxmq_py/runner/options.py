"""JobRunnerOptions: how a runner leases and runs jobs. Get one from ``JobRegistry.runner()``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, Self

from psycopg_pool import AsyncConnectionPool

from .._validate import Duration, check_int, check_text, to_timedelta
from ..errors import ConfigurationError
from ..hooks import RunnerHooks
from ._jobs import JobSource
from ._processes import DEFAULT_PROCESS_LIMITS, ProcessLimits
from ._runner import Runner, RunnerConfig
from .handle import JobRunnerHandle

__all__ = ["DEFAULT_CANCEL_GRACE", "DEFAULT_LEASE", "DEFAULT_MAX_PAYLOAD_BYTES", "JobRunnerOptions"]

DEFAULT_LEASE = timedelta(seconds=30)
"""How long a runner holds a job (unless the job sets its own lease); renewed while it runs."""

DEFAULT_CANCEL_GRACE = 5.0
"""Seconds a cancelled async job may take to stop before it is abandoned."""

DEFAULT_JOBS_PER_PROCESS = DEFAULT_PROCESS_LIMITS.max_jobs
"""Jobs a worker process runs before it is replaced, unless told otherwise."""

DEFAULT_MAX_PAYLOAD_BYTES = 64 * 1024 * 1024
"""The payload bytes a runner holds at once, unless told otherwise."""


class JobRunnerOptions:
    """A runner's settings; every setter validates its value and returns the options."""

    def __init__(self, registry: JobSource, pool: AsyncConnectionPool[Any] | str | None) -> None:
        """Options for running ``registry``'s jobs on ``pool`` (a pool, a DSN, or None)."""
        if pool is not None and not isinstance(pool, AsyncConnectionPool | str):
            raise ConfigurationError(
                f"pool must be an AsyncConnectionPool, a connection string or None, got {pool!r}"
            )
        self._registry = registry
        self._pool = pool
        self._min = 16
        self._max = 32
        self._channel_names: list[str] | None = None
        self._keep_alive = True
        self._lease = DEFAULT_LEASE
        self._poll_interval = 2.0
        self._maintenance_interval = 1.0
        self._hooks: tuple[RunnerHooks, ...] = ()
        self._durable_leases = False
        self._cancel_grace = DEFAULT_CANCEL_GRACE
        self._max_payload_bytes = DEFAULT_MAX_PAYLOAD_BYTES
        self._prepared_statements: bool | None = None
        self._listen_dsn: str | None = None
        self._processes = DEFAULT_PROCESS_LIMITS

    def set_concurrency(self, min_concurrency: int, max_concurrency: int) -> Self:
        """Leases more jobs whenever fewer than ``min_concurrency`` job functions run, up to
        ``max_concurrency`` running at once (default 16 and 32). A job whose function has
        returned no longer takes a slot while its outcome is written, so the next lease
        overlaps that write; the runner holds at most twice ``max_concurrency`` leases."""
        low = check_int("min_concurrency", min_concurrency, minimum=1)
        high = check_int("max_concurrency", max_concurrency, minimum=1, maximum=100_000)
        if low > high:
            raise ConfigurationError(
                f"min_concurrency ({low}) must not exceed max_concurrency ({high})"
            )
        self._min, self._max = low, high
        return self

    def set_channel_names(self, channel_names: Sequence[str] | None) -> Self:
        """Runs only jobs of these channels; ``None`` (the default) runs every channel, an
        empty list none."""
        if channel_names is None:
            self._channel_names = None
            return self
        if isinstance(channel_names, str):
            raise ConfigurationError("channel_names must be a list of names, not one str")
        self._channel_names = sorted({check_text("channel_names", n) for n in channel_names})
        return self

    def set_keep_alive(self, keep_alive: bool) -> Self:
        """Renews the leases of running jobs automatically (default True). Without, a job that
        runs longer than its lease must call ``keep_alive()`` or it may run twice."""
        if not isinstance(keep_alive, bool):
            raise ConfigurationError(f"keep_alive must be a bool, got {keep_alive!r}")
        self._keep_alive = keep_alive
        return self

    def set_lease(self, lease: Duration) -> Self:
        """Sets the lease of jobs that do not set their own (default 30 s)."""
        self._lease = to_timedelta("lease", lease, allow_zero=False)
        return self

    def set_durable_leases(self, durable: bool) -> Self:
        """Whether taking a lease waits until the database has flushed it to disk (default
        False: the lease statement commits with ``synchronous_commit = off``, set for its own
        transaction only, which takes a disk flush off the path from spawn to start).

        Either way a job runs at least once, and completion, failure and checkpoints wait for
        the flush. Without durable leases, a crash of the database server itself (not of a
        runner) may forget the leases taken in its last fraction of a second: those jobs become
        ready again, without the attempt counted, and may run once more while their first
        runner still runs them; that runner's ``complete()`` then raises ``LeaseLostError``.
        """
        if not isinstance(durable, bool):
            raise ConfigurationError(f"durable must be a bool, got {durable!r}")
        self._durable_leases = durable
        return self

    def set_poll_interval(self, poll_interval: Duration) -> Self:
        """Polls at least this often even without notifications (default 2 s)."""
        self._poll_interval = to_timedelta(
            "poll_interval", poll_interval, allow_zero=False
        ).total_seconds()
        return self

    def set_maintenance_interval(self, interval: Duration) -> Self:
        """How often expired leases and two-phase jobs are swept (default 1 s)."""
        self._maintenance_interval = to_timedelta(
            "maintenance_interval", interval, allow_zero=False
        ).total_seconds()
        return self

    def set_cancel_grace(self, grace: Duration) -> Self:
        """How long a cancelled ``async def`` job may take to stop (default 5 s): cancelled by
        its timeout, by a cancel request, or by ``stop()`` after its timeout. A job still
        running then (it swallowed ``CancelledError``) is abandoned: its slot is freed and its
        lease no longer renewed; after a timeout or a cancel request its attempt is recorded
        (timed out, or cancelled), after a stop its lease is left to expire. Its coroutine may
        still run: a job that ignores cancellation can run twice at once."""
        self._cancel_grace = to_timedelta("cancel_grace", grace).total_seconds()
        return self

    def set_processes(
        self,
        processes: int | None = None,
        *,
        max_jobs_per_process: int = DEFAULT_JOBS_PER_PROCESS,
        max_memory_mb: int | None = None,
    ) -> Self:
        """The worker processes of jobs declared with ``isolation="process"``: at most
        ``processes`` at once (default: the machine's cores), started when first needed; each
        is replaced after ``max_jobs_per_process`` jobs (default 1,000), or after a job that
        took its peak memory above ``max_memory_mb`` (default: no bound). Such jobs wait for a
        free process; the runner's ``set_concurrency`` still bounds the jobs it holds."""
        limit = None
        if max_memory_mb is not None:
            limit = check_int("max_memory_mb", max_memory_mb, minimum=1) * 1024 * 1024
        self._processes = ProcessLimits(
            processes=os.cpu_count() or 1
            if processes is None
            else check_int("processes", processes, minimum=1, maximum=1024),
            max_jobs=check_int("max_jobs_per_process", max_jobs_per_process, minimum=1),
            max_memory=limit,
        )
        return self

    def set_max_payload_bytes(self, max_bytes: int) -> Self:
        """The payload bytes the runner holds at once (default 64 MiB): a poll leases jobs
        until the payloads it holds reach this, always at least one job, so that a few large
        payloads cannot fill the process's memory. A job larger than the rest of the budget
        runs once the budget has room (alone, if it is larger than the whole budget)."""
        self._max_payload_bytes = check_int(
            "max_payload_bytes", max_bytes, minimum=1, maximum=2**62
        )
        return self

    def set_prepared_statements(self, prepared: bool | None) -> Self:
        """Whether the runner's connections prepare their statements on the server (psycopg's
        ``prepare_threshold``). ``None`` (the default) decides at start: not when the
        connection goes through a pooler or proxy (PgBouncer in transaction mode cannot keep
        prepared statements), else yes. A pool you pass keeps its own setting."""
        if prepared is not None and not isinstance(prepared, bool):
            raise ConfigurationError(f"prepared must be a bool or None, got {prepared!r}")
        self._prepared_statements = prepared
        return self

    def set_listen_dsn(self, dsn: str | None) -> Self:
        """A connection string for the runner's LISTEN connection alone (default: the
        runner's own). Behind a transaction pooler notifications cannot arrive: name a direct
        connection to PostgreSQL here (the runner detects a deaf listener and polls instead,
        at some cost in latency)."""
        if dsn is not None and not isinstance(dsn, str):
            raise ConfigurationError(f"listen dsn must be a str or None, got {dsn!r}")
        self._listen_dsn = dsn
        return self

    def set_hooks(self, *hooks: RunnerHooks) -> Self:
        """Tells these hooks about the runner's events (see :class:`sqlxmq_py.hooks.RunnerHooks`),
        e.g. to export metrics or traces."""
        for hook in hooks:
            if not isinstance(hook, RunnerHooks):
                raise ConfigurationError(f"hooks must be RunnerHooks instances, got {hook!r}")
        self._hooks = hooks
        return self

    def config(self) -> RunnerConfig:
        """The settings as a frozen value."""
        return RunnerConfig(
            registry=self._registry,
            pool=self._pool,
            min_concurrency=self._min,
            max_concurrency=self._max,
            channel_names=None if self._channel_names is None else tuple(self._channel_names),
            keep_alive=self._keep_alive,
            default_lease=self._lease,
            poll_interval=self._poll_interval,
            maintenance_interval=self._maintenance_interval,
            durable_leases=self._durable_leases,
            hooks=self._hooks,
            cancel_grace=self._cancel_grace,
            max_payload_bytes=self._max_payload_bytes,
            prepared_statements=self._prepared_statements,
            listen_dsn=self._listen_dsn,
            processes=self._processes,
        )

    async def run(self) -> JobRunnerHandle:
        """Starts the runner in the background and returns its handle.

        Raises:
            SchemaError: the database has no up-to-date sqlxmq_py schema (run ``migrate()``).
        """
        runner = Runner(self.config())
        await runner.start()
        return JobRunnerHandle(runner)
