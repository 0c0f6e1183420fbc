"""The runner's parts as the kit's drain sees them: where statements run (the test's connection,
a pool, or a sync connection), the outcome writer with the runner batcher's interface, the host
a job talks to, and the registry seen through a capture of each job function's call.

The drain (``engine``) hands these to the runner's own attempt code
(``sqlxmq_py.runner._attempts.Attempts``), which runs and settles each attempt exactly as under
a runner; the writer only replaces the batching: each outcome is written at once, with the
runner's statement, on the drain's connection.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal, cast

import psycopg
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from .._connections import Rows, fetch_async, fetch_sync
from ..current_job import JobInfo, LeasedJob, encode_job_result
from ..errors import ConfigurationError, LeaseLostError, PayloadError
from ..hooks import JobOutcome, RunnerHooks
from ..registry import JobRegistry
from ..runner._execution import runner_identity
from ..sql import query
from ._pool import TransactionPool

if TYPE_CHECKING:
    from ..job import NamedJob
    from ..runner._attempts import Attempts
    from ..runner._batcher import Outcome

__all__ = [
    "Capture",
    "CapturingJob",
    "CapturingRegistry",
    "Database",
    "Host",
    "Outcomes",
    "Writer",
    "stored_result",
]


class Database:
    """Where the drain's statements run, and what jobs get as ``current_job.pool``."""

    def __init__(self, target: object) -> None:
        """Statements go to ``target``: an async or sync connection, or a pool.

        Raises:
            ConfigurationError: ``target`` is none of those.
        """
        self._target = target
        self._pool: AsyncConnectionPool[Any] | None = None
        if isinstance(target, psycopg.AsyncConnection):
            self._pool = TransactionPool(target)
        elif isinstance(target, AsyncConnectionPool):
            self._pool = target
        elif not isinstance(target, psycopg.Connection | ConnectionPool):
            raise ConfigurationError(
                "expected a psycopg AsyncConnection or AsyncConnectionPool (drain), or a "
                f"Connection or ConnectionPool (run_pending), got {type(target).__name__}"
            )

    @property
    def target(self) -> object:
        """Where the statements go: the connection or pool given."""
        return self._target

    async def execute(self, statement: bytes, params: Mapping[str, object] | None = None) -> Rows:
        """Runs one statement (on a pool: in a transaction of its own) and returns its rows."""
        target = self._target
        if isinstance(target, psycopg.Connection | ConnectionPool):
            return fetch_sync(target, statement, params)  # blocks the loop: one job at a time
        return await fetch_async(cast(Any, target), statement, params)

    @property
    def pool(self) -> AsyncConnectionPool[Any]:
        """What jobs get as ``current_job.pool``.

        Raises:
            ConfigurationError: on a sync connection (run_pending): there is none to lend.
        """
        if self._pool is None:
            raise ConfigurationError(
                "current_job.pool is not available under run_pending(), which runs on a sync "
                "connection: an async job that needs the database must be drained with "
                "`await drain(aconn, registry)` on an AsyncConnection"
            )
        return self._pool


class Capture:
    """What the function of the attempt being run returned or raised."""

    def __init__(self) -> None:
        """Nothing captured yet."""
        self.returned: Any = None
        self.raised: BaseException | None = None

    def reset(self) -> None:
        """Forgets the last attempt."""
        self.returned, self.raised = None, None


class CapturingJob:
    """A registered job as the attempt code sees it, with its function's return value and
    exception captured (everything else is the job's own)."""

    def __init__(self, named: NamedJob[..., Any], capture: Capture) -> None:
        """Wraps ``named``; its calls are told to ``capture``."""
        self.named = named
        self.name = named.name
        self.options = named.options
        self.is_async = named.is_async
        self.payload_codec = named.payload_codec
        self.result_codec = named.result_codec
        self._capture = capture
        self.fn = self._call_async if named.is_async else self._call

    async def _call_async(self, *args: Any, **kwargs: Any) -> Any:
        try:
            self._capture.returned = await self.named.fn(*args, **kwargs)
        except BaseException as exc:
            self._capture.raised = exc
            raise
        return self._capture.returned

    def _call(self, *args: Any, **kwargs: Any) -> Any:
        try:
            self._capture.returned = self.named.fn(*args, **kwargs)
        except BaseException as exc:
            self._capture.raised = exc
            raise
        return self._capture.returned


class CapturingRegistry:
    """The user's registry as the attempt code sees it: the same jobs, context and error
    handler, with each call captured."""

    def __init__(self, registry: JobRegistry, capture: Capture) -> None:
        """Wraps ``registry``; its jobs' calls are told to ``capture``."""
        self._registry = registry
        self._capture = capture
        self._jobs: dict[str, CapturingJob] = {}
        self.names = registry.names

    def get(self, name: str) -> CapturingJob | None:
        """The job registered under ``name`` (or an alias), captured; None if unknown."""
        named = self._registry.get(name)
        if named is None:
            return None
        if name not in self._jobs:
            self._jobs[name] = CapturingJob(named, self._capture)
        return self._jobs[name]

    def context_for(self, named: CapturingJob) -> dict[str, object]:
        """The job's context values, from the registry (raises ConfigurationError)."""
        return self._registry.context_for(named.named)

    @property
    def error_handler(self) -> Any:
        """Captures the error, then calls the registry's handler, if any."""
        return self._on_error

    async def _on_error(self, info: JobInfo, error: BaseException) -> None:
        self._capture.raised = error  # the attempt's error as recorded (JobTimeoutError, ...)
        handler = self._registry.error_handler
        if handler is not None:
            result = handler(info, error)
            if result is not None:
                await result


class Writer:
    """The runner batcher's interface, writing each outcome at once with the runner's
    statement, and remembering what it wrote."""

    def __init__(self, db: Database, default_retain: timedelta) -> None:
        """Writes on ``db``; completed jobs are kept ``default_retain`` unless they say."""
        self._db = db
        self._default_retain = default_retain
        self.results: dict[uuid.UUID, str | None] = {}
        self.errors: dict[uuid.UUID, str] = {}
        self.delays: dict[uuid.UUID, timedelta] = {}
        self.failure: BaseException | None = None

    def complete(self, job: LeasedJob, result: str | None = None) -> asyncio.Future[Outcome]:
        """Completes the job now (``mq_complete``); the future holds 'completed' or None."""
        self.results[job.token] = result
        extra = {"results": [result], "default_retain": self._default_retain, "wait": True}
        return self._write("complete", job, extra)

    def fail(self, job: LeasedJob, error: str, delay: timedelta) -> asyncio.Future[Outcome]:
        """Records the failed attempt now (``mq_fail``); the future holds its new state."""
        self.errors[job.token], self.delays[job.token] = error, delay
        return self._write("fail", job, {"delays": [delay], "errors": [error], "wait": True})

    def release(self, job: LeasedJob) -> asyncio.Future[Outcome]:
        """Hands the lease back now (``mq_release``)."""
        return self._write("release", job, {"by": runner_identity(), "started": True})

    def park(self, job: LeasedJob, reason: str) -> asyncio.Future[Outcome]:
        """Parks the job now (``mq_park``), ``reason`` recorded as its last error."""
        self.errors[job.token] = reason
        return self._write("park", job, {"errors": [reason]})

    def _write(
        self,
        kind: Literal["complete", "fail", "release", "park"],
        job: LeasedJob,
        extra: dict[str, object],
    ) -> asyncio.Future[Outcome]:
        params = {"ids": [job.id], "tokens": [job.token], **extra}
        return asyncio.ensure_future(self._execute(kind, job, params))

    async def _execute(
        self, kind: Literal["complete", "fail", "release", "park"], job: LeasedJob, params: Any
    ) -> Outcome:
        try:
            rows = await self._db.execute(query(kind), params)
        except Exception as exc:  # the drain raises it once the attempt has ended
            self.failure = exc
            return None
        return next((str(outcome) for job_id, outcome in rows if job_id == job.id), None)


class Host:
    """What a job needs from the runner that leased it (``JobHost``), for the drain."""

    def __init__(self, db: Database, registry: JobRegistry) -> None:
        """A host on ``db`` for ``registry``'s jobs; ``attempts`` is set once they exist."""
        self._db = db
        self._registry = registry
        self._loop = asyncio.get_running_loop()
        self.attempts: Attempts | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The drain's event loop."""
        return self._loop

    @property
    def pool(self) -> AsyncConnectionPool[Any]:
        """The pool jobs are lent (see :attr:`Database.pool`)."""
        return self._db.pool

    @property
    def default_retain(self) -> timedelta:
        """How long completed jobs are kept unless they say (the registry's)."""
        return self._registry.retain_for

    async def complete_job(self, job: LeasedJob, result: object = None) -> None:
        """``current_job.complete()`` without a connection.

        Raises:
            LeaseLostError: the job was already completed or failed.
        """
        assert self.attempts is not None
        if not await self.attempts.complete(job, result):
            raise LeaseLostError(
                f"cannot complete job {job.id} ({job.name!r}, attempt {job.attempt}): it was "
                "already completed or failed, or its lease is gone"
            )

    async def execute(self, statement: bytes, params: Mapping[str, object]) -> Rows:
        """Runs a job's own statement (checkpoint, keep-alive, completion check)."""
        return await self._db.execute(statement, params)


class Outcomes(RunnerHooks):
    """The outcome of the attempt being run, as the attempt code settled it."""

    def __init__(self) -> None:
        """Nothing settled yet."""
        self.last: JobOutcome | None = None

    def job_finished(self, job: JobInfo, outcome: JobOutcome, duration_s: float | None) -> None:
        """Remembers the outcome."""
        self.last = outcome


def stored_result(job: LeasedJob, encoded: str | None, returned: Any, via_writer: bool) -> Any:
    """The result a completed attempt stored, decoded as the job's declared result type."""
    try:
        text = encoded if via_writer else encode_job_result(job, returned)
    except PayloadError:
        return None  # a runner drops a result it cannot encode (job_result_not_stored)
    if text is None:
        return None
    if job.result_codec is not None:
        return job.result_codec.decode(text, what=f"result of job {job.id} ({job.name!r})")
    return json.loads(text)
