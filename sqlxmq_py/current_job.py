"""The running job, as its function sees it.

``async def`` jobs receive a :class:`CurrentJob`; plain ``def`` jobs, which run in worker threads,
receive its blocking twin :class:`BlockingCurrentJob`. Both carry the same data; every action is
fenced by the job's lease, so a worker whose lease passed to another gets
:class:`~sqlxmq_py.LeaseLostError` instead of changing a job that is no longer its own.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Generic, Protocol, cast

import psycopg
from psycopg_pool import AsyncConnectionPool, ConnectionPool
from typing_extensions import TypeVar

from ._connections import Rows, fetch_async, fetch_sync
from ._validate import Duration, to_timedelta
from .checkpoint import Checkpoint
from .errors import LeaseLostError
from .payload import decode_json, encode_result
from .sql import query

if TYPE_CHECKING:
    from ._workflow_context import WorkflowContext
    from .codec import Codec

T = TypeVar("T", default=Any)
"""A job's declared payload type (``Any``: plain JSON)."""

__all__ = [
    "BlockingCurrentJob",
    "CurrentJob",
    "JobHost",
    "JobInfo",
    "LeasedJob",
    "encode_job_result",
]


@dataclass(slots=True, kw_only=True)
class LeasedJob:
    """One lease of a job, as the runner got it from the database."""

    id: uuid.UUID
    token: uuid.UUID
    name: str
    attempt: int
    max_attempts: int
    channel_name: str
    channel_args: str
    lease: timedelta
    retry_backoff: timedelta
    payload_json: str | None
    payload_bytes: bytes | None
    job_key: str | None = None
    retain_for: timedelta | None = None
    headers: str | None = None
    payload_size: int = 0
    codec: Codec | None = None
    """The job's payload codec, when it declares a payload type."""
    result_codec: Codec | None = None
    """The job's result codec, when it declares a result type."""
    completing: bool = False
    """A completion of this attempt is queued or written (by the runner or ``complete()``)."""
    settling: bool = False
    """An outcome of this attempt (failed, parked, handed back) is queued or written: a renewal
    that finds the lease gone meanwhile says nothing, the write's own answer decides."""
    completing_in_tx: bool = False
    """``complete(conn)`` deleted the job inside the job's own transaction; whether that
    transaction commits is only known once the job returns."""
    completed: bool = False
    lease_lost: bool = False
    cancelled: bool = False
    stopping: bool = False
    """The runner was told to stop and its stop timeout passed (``JobInfo.stopping``)."""


def encode_job_result(job: LeasedJob, result: object) -> str | None:
    """A job's result as JSON text: by its declared result type's rules when it has one.

    Raises:
        PayloadError: the result cannot be encoded.
    """
    if result is None:
        return None
    if job.result_codec is not None:
        return job.result_codec.encode(result)
    return encode_result(result)


class JobHost(Protocol):
    """What a job needs from the runner that leased it."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The runner's event loop."""
        ...

    @property
    def pool(self) -> AsyncConnectionPool[Any]:
        """The runner's connection pool."""
        ...

    @property
    def default_retain(self) -> timedelta:
        """How long finished jobs are kept when they do not say (the registry's retain_for)."""
        ...

    async def complete_job(self, job: LeasedJob, result: object = None) -> None:
        """Completes the job in the runner's next completion batch; raises LeaseLostError."""
        ...

    async def execute(self, query: bytes, params: Mapping[str, object]) -> Rows:
        """Runs one statement on the runner's own connection."""
        ...


def _lease_lost(job: LeasedJob, action: str) -> LeaseLostError:
    return LeaseLostError(
        f"cannot {action} job {job.id} ({job.name!r}, attempt {job.attempt}): its lease is gone "
        "(it expired and the job may be running elsewhere, or the job was completed, failed or "
        "cleared)"
    )


class JobInfo:
    """The data of a running job, shared by :class:`CurrentJob` and its blocking twin."""

    __slots__ = ("_host", "_job")

    def __init__(self, job: LeasedJob, host: JobHost) -> None:
        """Wraps a lease; runners create these, applications receive them."""
        self._job = job
        self._host = host

    @property
    def id(self) -> uuid.UUID:
        """The job's id, as returned by ``spawn``."""
        return self._job.id

    @property
    def name(self) -> str:
        """The job's registered name."""
        return self._job.name

    @property
    def attempt(self) -> int:
        """Which attempt this is: 1 for the first run."""
        return self._job.attempt

    @property
    def max_attempts(self) -> int:
        """How many attempts the job has in all (retries + 1, plus checkpoint extras)."""
        return self._job.max_attempts

    @property
    def channel_name(self) -> str:
        """The job's channel."""
        return self._job.channel_name

    @property
    def channel_args(self) -> str:
        """The job's channel arguments."""
        return self._job.channel_args

    @property
    def job_key(self) -> str | None:
        """The job's key, if it was spawned with one (cron ticks: ``cron:<schedule>:<tick>``)."""
        return self._job.job_key

    @property
    def headers(self) -> dict[str, str]:
        """The headers the job was spawned with (``JobBuilder.set_header``)."""
        return json.loads(self._job.headers) if self._job.headers else {}

    @property
    def workflow(self) -> WorkflowContext | None:
        """The workflow this job is a step of (its id, its step name, its parents' results,
        adding steps); None if it is no workflow's step. See :mod:`sqlxmq_py.workflow`."""
        from ._workflow_context import context_of

        return context_of(self.headers)

    @property
    def cancelled(self) -> bool:
        """True once someone asked to cancel this job (``sqlxmq_py.admin.cancel``): stop soon. A job
        that then raises is recorded as cancelled, not retried; one that returns completes."""
        return self._job.cancelled

    @property
    def stopping(self) -> bool:
        """True once the runner was told to stop (``stop()``, SIGTERM) and its stop timeout
        passed with this job still running. An async job is cancelled then; a thread job cannot
        be, so it should look at this flag: one that then raises is handed back as interrupted
        (the attempt is not counted and the job is ready at once for another runner); one that
        returns completes."""
        return self._job.stopping

    @property
    def lease_lost(self) -> bool:
        """True once the runner learnt that this lease is gone (completion will be refused)."""
        return self._job.lease_lost

    @property
    def completed(self) -> bool:
        """True once ``complete()`` succeeded for this attempt (with a connection: once its
        statement ran; the completion counts only if that transaction commits)."""
        return self._job.completed or self._job.completing_in_tx

    def json(self) -> Any:
        """The decoded JSON payload, or ``None`` if the job has none.

        Raises:
            PayloadError: the stored payload is not valid JSON.
        """
        return decode_json(self._job.payload_json, job_name=self._job.name)

    def raw_json(self) -> str | None:
        """The JSON payload as stored, or ``None``."""
        return self._job.payload_json

    def _payload(self) -> Any:
        codec = self._job.codec
        if codec is None:
            return self.json()
        return codec.decode(self._job.payload_json, what=f"payload of job {self._job.name!r}")

    def raw_bytes(self) -> bytes | None:
        """The binary payload, or ``None``."""
        return self._job.payload_bytes

    def _complete_params(self, result: object) -> dict[str, object]:
        return {
            "ids": [self._job.id],
            "tokens": [self._job.token],
            "results": [encode_job_result(self._job, result)],
            "default_retain": self._host.default_retain,
            "wait": True,
        }

    def _completed(self, rows: Rows) -> None:
        if not any(outcome == "completed" for _, outcome in rows):
            raise _lease_lost(self._job, "complete")
        # it counts once the caller's transaction commits: the runner looks when the job ends
        self._job.completing_in_tx = True

    def _keep_alive_params(self, duration: Duration) -> dict[str, object]:
        return {
            "id": self._job.id,
            "token": self._job.token,
            "duration": to_timedelta("duration", duration, allow_zero=False),
        }

    def _check(self, rows: Rows, action: str) -> None:
        if not rows:
            raise _lease_lost(self._job, action)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._job.name!r} {self._job.id} attempt {self.attempt}>"


class CurrentJob(JobInfo, Generic[T]):
    """The running job, for ``async def`` jobs. ``CurrentJob[Email]`` declares the job's
    payload type (see :mod:`sqlxmq_py.codec`); a bare ``CurrentJob`` keeps plain JSON."""

    __slots__ = ()

    @property
    def payload(self) -> T:
        """The payload, decoded and validated as the job's declared type (plain decoded JSON,
        or ``None``, for an untyped job).

        Raises:
            PayloadError: the stored payload does not validate (the message names the field).
        """
        return cast(T, self._payload())

    @property
    def pool(self) -> AsyncConnectionPool[Any]:
        """The runner's connection pool, for the job's own queries."""
        return self._host.pool

    async def complete(
        self,
        conn: psycopg.AsyncConnection[Any] | AsyncConnectionPool[Any] | None = None,
        *,
        result: object = None,
    ) -> None:
        """Completes (deletes) the job.

        With ``conn``, the deletion joins that transaction: commit it together with the job's
        own writes for exactly-once effects. Without, the job is completed in the runner's next
        batch, and this returns once that is durable. Returning normally from the job function
        completes it too (unless ``auto_complete=False``). ``result`` is kept with the job when
        it keeps history (``retain_for``).

        Raises:
            LeaseLostError: the lease is gone; roll back ``conn``'s transaction.
            PayloadError: ``result`` cannot be encoded as JSON.
        """
        if conn is None:
            await self._host.complete_job(self._job, result)
            return
        params = self._complete_params(result)
        self._completed(await fetch_async(conn, query("complete"), params))

    async def checkpoint(
        self,
        checkpoint: Checkpoint,
        conn: psycopg.AsyncConnection[Any] | AsyncConnectionPool[Any] | None = None,
    ) -> None:
        """Saves progress for the next attempt (payload, extra retries, a longer lease),
        in ``conn``'s transaction if given.

        Raises:
            LeaseLostError: the lease is gone.
        """
        params = checkpoint.params(self._job.id, self._job.token)
        rows = await (
            self._host.execute(query("checkpoint"), params)
            if conn is None
            else fetch_async(conn, query("checkpoint"), params)
        )
        self._check(rows, "checkpoint")

    async def keep_alive(self, duration: Duration) -> None:
        """Extends the lease to at least ``duration`` from now.

        Raises:
            LeaseLostError: the lease is gone.
        """
        rows = await self._host.execute(query("keep_alive"), self._keep_alive_params(duration))
        self._check(rows, "keep alive")


class BlockingCurrentJob(JobInfo, Generic[T]):
    """The running job, for plain ``def`` jobs running in worker threads;
    ``BlockingCurrentJob[Email]`` declares the payload type, as for :class:`CurrentJob`."""

    __slots__ = ()

    @property
    def payload(self) -> T:
        """The payload, decoded and validated as the job's declared type; see
        :attr:`CurrentJob.payload`."""
        return cast(T, self._payload())

    def _on_loop(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._host.loop).result()

    def complete(
        self,
        conn: psycopg.Connection[Any] | ConnectionPool[Any] | None = None,
        *,
        result: object = None,
    ) -> None:
        """Completes (deletes) the job; see :meth:`CurrentJob.complete`.

        ``conn`` is a sync connection: commit its transaction with the job's own writes.

        Raises:
            LeaseLostError: the lease is gone; roll back ``conn``'s transaction.
        """
        if conn is None:
            self._on_loop(self._host.complete_job(self._job, result))
            return
        self._completed(fetch_sync(conn, query("complete"), self._complete_params(result)))

    def checkpoint(
        self,
        checkpoint: Checkpoint,
        conn: psycopg.Connection[Any] | ConnectionPool[Any] | None = None,
    ) -> None:
        """Saves progress for the next attempt; see :meth:`CurrentJob.checkpoint`.

        Raises:
            LeaseLostError: the lease is gone.
        """
        params = checkpoint.params(self._job.id, self._job.token)
        rows = (
            self._on_loop(self._host.execute(query("checkpoint"), params))
            if conn is None
            else fetch_sync(conn, query("checkpoint"), params)
        )
        self._check(rows, "checkpoint")

    def keep_alive(self, duration: Duration) -> None:
        """Extends the lease to at least ``duration`` from now.

        Raises:
            LeaseLostError: the lease is gone.
        """
        params = self._keep_alive_params(duration)
        self._check(self._on_loop(self._host.execute(query("keep_alive"), params)), "keep alive")
