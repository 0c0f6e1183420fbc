"""What a job asks of the queue while :func:`~sqlxmq_py.testing.perform` calls it: the
running job classes that record ``complete()``, ``checkpoint()`` and ``keep_alive()`` instead of
writing them, and the records."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar, cast

import psycopg
from psycopg_pool import AsyncConnectionPool

from .._validate import Duration, to_timedelta
from ..builder import Checkpoint
from ..current_job import BlockingCurrentJob, CurrentJob, LeasedJob, encode_job_result
from ..errors import ConfigurationError, LeaseLostError
from ..job import NamedJob
from ..payload import decode_json
from ._pool import TransactionPool

__all__ = [
    "Completion",
    "RecordedCheckpoint",
    "Recorder",
    "RecordingBlockingCurrentJob",
    "RecordingCurrentJob",
]

T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class Completion:
    """A ``current_job.complete()`` call the job made."""

    result: Any
    """The ``result=`` it passed (checked to be encodable, as a runner encodes it)."""
    in_transaction: bool
    """Whether it passed a connection (``complete(conn)``: inside the job's own transaction)."""


@dataclass(frozen=True, kw_only=True)
class RecordedCheckpoint:
    """A ``current_job.checkpoint()`` call the job made."""

    payload_json: str | None
    """The JSON payload it saves for the next attempt (``None``: left as it is)."""
    payload_bytes: bytes | None
    bytes_set: bool
    """Whether it replaces the binary payload (with ``payload_bytes``)."""
    extra_retries: int
    duration: timedelta
    in_transaction: bool
    """Whether it passed a connection."""

    def json(self) -> Any:
        """The saved JSON payload, decoded.

        Returns:
            The decoded value, or ``None`` when the checkpoint keeps the payload.
        """
        return decode_json(self.payload_json, job_name="checkpoint")


class Recorder:
    """What the job asked of the queue, and the running job's ``JobHost`` (no database)."""

    def __init__(self, named: NamedJob[..., Any], pool: object) -> None:
        self._named = named
        self._pool = pool
        self._loop = asyncio.get_running_loop()
        self.completion: Completion | None = None
        self.checkpoints: list[RecordedCheckpoint] = []
        self.keep_alives: list[timedelta] = []

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop ``perform`` runs on."""
        return self._loop

    @property
    def pool(self) -> AsyncConnectionPool[Any]:
        """The pool given to ``perform`` (a connection is lent in a savepoint).

        Raises:
            ConfigurationError: ``perform`` was given none.
        """
        pool = self._pool
        if isinstance(pool, psycopg.AsyncConnection):
            pool = self._pool = TransactionPool(pool)
        if not isinstance(pool, AsyncConnectionPool):
            raise ConfigurationError(
                f"job {self._named.name!r} used current_job.pool, and perform() was given no "
                "pool: pass pool=aconn (your test's AsyncConnection, lent inside a savepoint) "
                "or an AsyncConnectionPool"
            )
        return pool

    @property
    def default_retain(self) -> timedelta:
        """Nothing is kept: there is no queue."""
        return timedelta(0)

    def complete(self, job: LeasedJob, result: object, in_transaction: bool) -> None:
        """Records a completion.

        Raises:
            LeaseLostError: the job completed already (as a runner refuses a second one).
            PayloadError: ``result`` cannot be encoded (as in a runner).
        """
        if self.completion is not None:
            raise LeaseLostError(f"job {job.id} ({job.name!r}) was already completed")
        encode_job_result(job, result)  # a result that cannot be encoded raises, as in a runner
        self.completion = Completion(result=result, in_transaction=in_transaction)
        job.completed = True

    async def complete_job(self, job: LeasedJob, result: object = None) -> None:
        """``JobHost.complete_job``: records the completion."""
        self.complete(job, result, False)

    def checkpoint(self, checkpoint: Checkpoint, in_transaction: bool) -> None:
        """Records a checkpoint."""
        p = checkpoint.params(uuid.UUID(int=0), uuid.UUID(int=0))
        self.checkpoints.append(
            RecordedCheckpoint(
                payload_json=cast("str | None", p["payload_json"]),
                payload_bytes=cast("bytes | None", p["payload_bytes"]),
                bytes_set=bool(p["set_bytes"]),
                extra_retries=cast(int, p["extra_retries"]),
                duration=cast(timedelta, p["duration"]),
                in_transaction=in_transaction,
            )
        )

    async def execute(self, query: bytes, params: Mapping[str, object]) -> Any:
        """``JobHost.execute``: never called (the recording job classes record instead).

        Raises:
            AssertionError: always.
        """
        raise AssertionError("perform() runs no statement")  # the job classes below record


class RecordingCurrentJob(CurrentJob[T]):
    """A ``CurrentJob`` whose requests to the queue are recorded (see :class:`Performed`)."""

    __slots__ = ()

    async def complete(self, conn: Any = None, *, result: object = None) -> None:
        """Records the completion (see :meth:`CurrentJob.complete`)."""
        cast(Recorder, self._host).complete(self._job, result, conn is not None)

    async def checkpoint(self, checkpoint: Checkpoint, conn: Any = None) -> None:
        """Records the checkpoint (see :meth:`CurrentJob.checkpoint`)."""
        cast(Recorder, self._host).checkpoint(checkpoint, conn is not None)

    async def keep_alive(self, duration: Duration) -> None:
        """Records the request (see :meth:`CurrentJob.keep_alive`)."""
        wanted = to_timedelta("duration", duration, allow_zero=False)
        cast(Recorder, self._host).keep_alives.append(wanted)


class RecordingBlockingCurrentJob(BlockingCurrentJob[T]):
    """A ``BlockingCurrentJob`` whose requests to the queue are recorded."""

    __slots__ = ()

    def complete(self, conn: Any = None, *, result: object = None) -> None:
        """Records the completion (see :meth:`BlockingCurrentJob.complete`)."""
        cast(Recorder, self._host).complete(self._job, result, conn is not None)

    def checkpoint(self, checkpoint: Checkpoint, conn: Any = None) -> None:
        """Records the checkpoint (see :meth:`BlockingCurrentJob.checkpoint`)."""
        cast(Recorder, self._host).checkpoint(checkpoint, conn is not None)

    def keep_alive(self, duration: Duration) -> None:
        """Records the request (see :meth:`BlockingCurrentJob.keep_alive`)."""
        wanted = to_timedelta("duration", duration, allow_zero=False)
        cast(Recorder, self._host).keep_alives.append(wanted)
