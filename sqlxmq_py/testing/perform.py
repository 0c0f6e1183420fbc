"""Calling one job function directly: :func:`perform` (async) and :func:`perform_sync`.

The job receives a real ``CurrentJob`` (a ``BlockingCurrentJob``, in a thread, for a plain
``def`` job) built for the test: its payload is encoded and decoded as in production, so a
typed job gets its ``Email`` validated (and a payload that does not validate raises the
``PayloadError`` a runner would record), and what it asks of the queue (``complete()``,
``checkpoint()``, ``keep_alive()``) is recorded instead of written. Nothing touches a database
unless the job itself does, through the ``pool=`` you lend it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Coroutine, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Generic, TypedDict, TypeVar, cast, overload

import psycopg
from psycopg_pool import AsyncConnectionPool
from typing_extensions import Unpack

from .._ids import new_job_ids
from ..current_job import BlockingCurrentJob, CurrentJob, LeasedJob
from ..errors import ConfigurationError, JobCancelledError
from ..hooks import JobOutcome
from ..job import NamedJob
from ..payload import encode_json
from ..registry import JobRegistry
from ..runner._execution import call_async, call_thread
from ..runner.options import DEFAULT_LEASE
from .recorded import (
    Completion,
    RecordedCheckpoint,
    Recorder,
    RecordingBlockingCurrentJob,
    RecordingCurrentJob,
)

__all__ = ["PerformOptions", "Performed", "perform", "perform_sync"]

R = TypeVar("R")
T = TypeVar("T")

Context = JobRegistry | Mapping[str, object] | Iterable[object]
"""Context values: a registry (its ``set_context`` values), a mapping by parameter name, or
values matched by class as ``set_context`` matches them."""


@dataclass(frozen=True, kw_only=True)
class Performed(Generic[R]):
    """How one call of a job function went, and how a runner would settle that attempt."""

    outcome: JobOutcome
    """``completed`` (it called ``complete()``, or returned with ``auto_complete``),
    ``abandoned`` (returned without completing, ``auto_complete=False``), ``retrying`` or
    ``failed`` (it raised, with attempts left or not), ``cancelled`` (it was cancelled)."""
    error: BaseException | None
    """What the job raised (with ``raise_errors=False``)."""
    completion: Completion | None
    """Its ``complete()`` call, if it made one."""
    checkpoints: tuple[RecordedCheckpoint, ...]
    keep_alives: tuple[timedelta, ...]
    current_job: CurrentJob[Any] | BlockingCurrentJob[Any] = field(repr=False)
    """The running job it was given."""
    returned: R | None = field(repr=False)

    @property
    def result(self) -> R:
        """What the function returned.

        Returns:
            Its return value, as returned.

        Raises:
            BaseException: what the job raised, if it raised.
        """
        if self.error is not None:
            raise self.error
        return cast(R, self.returned)

    @property
    def completed(self) -> bool:
        """Whether a runner would have completed the job."""
        return self.outcome == "completed"


def _context(named: NamedJob[..., Any], context: Context) -> dict[str, object]:
    if isinstance(context, JobRegistry):
        return context.context_for(named)
    if isinstance(context, Mapping):
        wanted = named.context_types()
        missing = sorted(set(wanted) - set(context))
        unknown = sorted(set(context) - set(wanted))
        if missing or unknown:
            raise ConfigurationError(
                f"job {named.name!r} takes the context parameters {sorted(wanted)}: "
                f"missing {missing}, unknown {unknown}"
            )
        return dict(context)
    if isinstance(context, str | bytes):
        raise ConfigurationError("context must be a registry, a mapping or a list of values")
    return JobRegistry([named]).set_context(*context).context_for(named)


def _leased(
    named: NamedJob[..., Any],
    payload: object,
    raw_json: str | None,
    raw_bytes: bytes | None,
    options: dict[str, Any],
) -> LeasedJob:
    o = named.options
    if raw_json is not None:
        payload_json: str | None = raw_json
    elif payload is None:
        payload_json = None
    else:
        codec = named.payload_codec  # encoded as a spawn encodes it: a wrong type raises here
        payload_json = encode_json(payload) if codec is None else codec.encode(payload)
    return LeasedJob(
        id=options["job_id"] or new_job_ids(1)[0],
        token=uuid.uuid4(),
        name=named.name,
        attempt=options["attempt"],
        max_attempts=options["max_attempts"] or o.retries + 1,
        channel_name=o.channel_name if options["channel_name"] is None else options["channel_name"],
        channel_args=options["channel_args"],
        lease=o.lease or DEFAULT_LEASE,
        retry_backoff=o.backoff,
        payload_json=payload_json,
        payload_bytes=raw_bytes,
        job_key=options["job_key"],
        headers=None if options["headers"] is None else encode_json(dict(options["headers"])),
        codec=named.payload_codec,
        result_codec=named.result_codec,
    )


def _outcome(named: NamedJob[..., Any], record: Recorder, job: LeasedJob, error: object) -> Any:
    if record.completion is not None:
        return "completed"
    if error is None:
        return "completed" if named.options.auto_complete else "abandoned"
    if isinstance(error, JobCancelledError | asyncio.CancelledError):
        return "cancelled"
    extra = sum(c.extra_retries for c in record.checkpoints)
    return "retrying" if job.attempt < job.max_attempts + extra else "failed"


class PerformOptions(TypedDict, total=False):
    """The options of :func:`perform` and :func:`perform_sync`."""

    raw_json: str
    """The stored JSON payload, exactly as given instead of ``payload`` (e.g. one written by
    another language, to see how the job's validation treats it)."""
    raw_bytes: bytes
    """The binary payload."""
    context: Context
    """The job's context values: a registry (its ``set_context`` values), a mapping by
    parameter name (``{"settings": Settings(...)}``), or values matched by class."""
    pool: psycopg.AsyncConnection[Any] | AsyncConnectionPool[Any]
    """What ``current_job.pool`` is: your test's connection (lent inside a savepoint, so the
    job writes in your transaction) or a pool. Without it, using the pool raises."""
    attempt: int
    """Which attempt this is (default 1)."""
    max_attempts: int
    """Attempts in all (default: the job's retries + 1)."""
    channel_name: str
    """Default: the job's."""
    channel_args: str
    job_key: str
    headers: Mapping[str, str]
    job_id: uuid.UUID
    """Default: a new id."""
    raise_errors: bool
    """Raise what the job raises (default True); False returns it in
    :attr:`Performed.error`, with what the job recorded before it raised."""


_DEFAULTS: dict[str, Any] = {
    "raw_json": None,
    "raw_bytes": None,
    "context": (),
    "pool": None,
    "attempt": 1,
    "max_attempts": None,
    "channel_name": None,
    "channel_args": "",
    "job_key": None,
    "headers": None,
    "job_id": None,
    "raise_errors": True,
}


@overload
async def perform(
    job: NamedJob[..., Coroutine[Any, Any, R], T],
    payload: T | None = None,
    **options: Unpack[PerformOptions],
) -> Performed[R]: ...


@overload
async def perform(
    job: NamedJob[..., R, T], payload: T | None = None, **options: Unpack[PerformOptions]
) -> Performed[R]: ...


async def perform(
    job: NamedJob[..., Any, Any], payload: object = None, **options: Unpack[PerformOptions]
) -> Performed[Any]:
    """Calls ``job``'s function once, as a runner would call it for one attempt, without a
    queue: with a real ``CurrentJob`` (``BlockingCurrentJob`` in a thread for a plain ``def``
    job), its payload encoded and decoded by the job's declared type, its context values, and
    its ``timeout``; ``complete()``, ``checkpoint()`` and ``keep_alive()`` are recorded.

    Args:
        job: a ``@job``.
        payload: its payload (an ``Email`` for a job typed ``Email``; any JSON value for an
            untyped one; ``None``: none).
        **options: see :class:`PerformOptions`.

    Returns:
        A :class:`Performed`: ``.result`` is what the function returned, ``.outcome`` how a
        runner would settle the attempt, and what it recorded. A record rather than the bare
        value, because completing, checkpointing and failing are a job's behaviour too.

    Raises:
        PayloadError: ``payload`` is not of the job's declared type (as at spawn).
        ConfigurationError: a context value or an option is missing or wrong.
        BaseException: what the job raised (a ``PayloadError`` naming the field for a payload
            that does not validate, a ``JobTimeoutError``), unless ``raise_errors=False``.
    """
    if not isinstance(job, NamedJob):
        raise ConfigurationError(f"perform() takes a @job, got {job!r}")
    unknown = set(options) - set(_DEFAULTS)
    if unknown:
        raise ConfigurationError(f"perform(): unknown options {sorted(unknown)}")
    opts = {**_DEFAULTS, **options}
    kwargs = _context(job, opts["context"])
    leased = _leased(job, payload, opts["raw_json"], opts["raw_bytes"], opts)
    record = Recorder(job, opts["pool"])
    current: CurrentJob[Any] | BlockingCurrentJob[Any]
    error: BaseException | None = None
    returned: Any = None
    try:
        if job.is_async:
            current = RecordingCurrentJob(leased, record)
            returned = await call_async(job, current, kwargs, job.options.timeout)
        else:
            current = RecordingBlockingCurrentJob(leased, record)
            with ThreadPoolExecutor(1, thread_name_prefix="sqlxmq-perform") as threads:
                returned = await call_thread(
                    job, current, kwargs, job.options.timeout, threads, lambda: None
                )
    except BaseException as exc:
        task = asyncio.current_task()
        outside = isinstance(exc, asyncio.CancelledError) and task is not None and task.cancelling()
        if outside or opts["raise_errors"]:
            raise
        error = exc
    return Performed(
        outcome=_outcome(job, record, leased, error),
        error=error,
        completion=record.completion,
        checkpoints=tuple(record.checkpoints),
        keep_alives=tuple(record.keep_alives),
        current_job=current,
        returned=returned,
    )


@overload
def perform_sync(
    job: NamedJob[..., Coroutine[Any, Any, R], T],
    payload: T | None = None,
    **options: Unpack[PerformOptions],
) -> Performed[R]: ...


@overload
def perform_sync(
    job: NamedJob[..., R, T], payload: T | None = None, **options: Unpack[PerformOptions]
) -> Performed[R]: ...


def perform_sync(
    job: NamedJob[..., Any, Any], payload: object = None, **options: Unpack[PerformOptions]
) -> Performed[Any]:
    """:func:`perform` for sync tests: runs it on an event loop of its own.

    Args:
        job: see :func:`perform`.
        payload: see :func:`perform`.
        **options: see :class:`PerformOptions`.

    Returns:
        See :func:`perform`.

    Raises:
        RuntimeError: called while an event loop runs in this thread (``await perform()``).
        BaseException: as :func:`perform`.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError("perform_sync() blocks, and an event loop runs here: await perform()")
    return asyncio.run(perform(job, payload, **options))
