"""The ``@job`` decorator and ``NamedJob``, a function registered under a name with defaults.

::

    @job(channel_name="foo")
    async def example_job(current_job: CurrentJob) -> None: ...

The first parameter receives the running job (``CurrentJob`` for ``async def`` jobs, which run on
the event loop; ``BlockingCurrentJob`` for plain ``def`` jobs, which run in worker threads). Any
further parameters must be annotated with a type: the runner passes the value of that type given
to ``JobRegistry.set_context``.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Concatenate, Generic, ParamSpec, Protocol, cast, overload

from typing_extensions import TypeVar

from ._connections import AnyConnection, AsyncConnectionLike, SyncConnectionLike
from ._signature import context_parameters, declared_types, default_name
from ._validate import Duration, check_name
from .builder import DEFAULT_RETRIES, DEFAULT_RETRY_BACKOFF, JobBuilder
from .codec import Codec, codec_for
from .current_job import BlockingCurrentJob, CurrentJob
from .errors import ConfigurationError
from .job_options import Isolation, JobOptions, check_process_job, declared_options
from .payload import encode_result
from .process_job import ProcessJob

__all__ = [
    "JobDecorator",
    "JobOptions",
    "NamedJob",
    "declared_types",
    "default_name",
    "job",
]

P = ParamSpec("P")
R = TypeVar("R", covariant=True)
T = TypeVar("T", default=Any)
"""A job's declared payload type (``Any``: plain JSON)."""
X = TypeVar("X")


class NamedJob(Generic[P, R, T]):
    """A job function with its name and default options. Create one with ``@job``.

    The type parameters: the function's parameters and return type, and the payload type it
    declares with its first parameter (``CurrentJob[Email]``; ``Any`` when it declares none).
    Calling it calls the function directly, which is handy in tests.
    """

    def __init__(self, fn: Callable[P, R], options: JobOptions) -> None:
        """Wraps ``fn``; prefer the ``@job`` decorator, which validates the options."""
        self._fn = fn
        self._options = options
        self._is_async = inspect.iscoroutinefunction(fn)
        self._context_params = context_parameters(fn, options.name)
        self._context_types: dict[str, type[Any] | str] | None = None
        self._codecs: tuple[Codec | None, Codec | None] | None = None
        self._template = self._new_builder()
        functools.update_wrapper(self, fn)

    @property
    def name(self) -> str:
        """The name jobs are spawned and looked up under."""
        return self._options.name

    @property
    def options(self) -> JobOptions:
        """The defaults this job was declared with."""
        return self._options

    @property
    def fn(self) -> Callable[P, R]:
        """The decorated function."""
        return self._fn

    @property
    def is_async(self) -> bool:
        """Whether the function is ``async def`` (runs on the loop) or plain (runs in a thread)."""
        return self._is_async

    def builder(self) -> JobBuilder[T]:
        """A new :class:`JobBuilder` for this job, preset with its defaults (and, for a typed
        job, encoding its payload with the declared type's rules)."""
        builder = self._template.copy()
        if builder.payload_codec is None and self.payload_codec is not None:
            # resolved on first use (annotations may name later classes), then kept
            self._template.set_payload_codec(self.payload_codec)
            builder.set_payload_codec(self.payload_codec)
        return cast("JobBuilder[T]", builder)

    @property
    def payload_codec(self) -> Codec | None:
        """The codec of the payload type the job declares (None: plain JSON)."""
        return self._resolve_codecs()[0]

    @property
    def result_codec(self) -> Codec | None:
        """The codec of the result type the job declares (its return annotation; None for
        ``None`` or ``Any``: plain JSON)."""
        return self._resolve_codecs()[1]

    def _resolve_codecs(self) -> tuple[Codec | None, Codec | None]:
        """Read from the annotations on first use, so they may name classes defined after the
        decorator ran.

        Raises:
            ConfigurationError: a declared type cannot be encoded and decoded.
        """
        if self._codecs is None:
            payload, result = declared_types(self._fn)
            try:
                self._codecs = (codec_for(payload), codec_for(result))
            except TypeError as exc:
                raise ConfigurationError(
                    f"job {self.name!r}: its payload or result type cannot be encoded as JSON: "
                    f"{exc}"
                ) from exc
        return self._codecs

    @overload
    def wait_for_result(
        self: NamedJob[..., Coroutine[Any, Any, X], Any],
        conn: SyncConnectionLike,
        job_id: uuid.UUID,
        timeout: float | None = None,
    ) -> X: ...

    @overload
    def wait_for_result(
        self: NamedJob[..., Coroutine[Any, Any, X], Any],
        conn: AsyncConnectionLike,
        job_id: uuid.UUID,
        timeout: float | None = None,
    ) -> Coroutine[Any, Any, X]: ...

    @overload
    def wait_for_result(
        self: NamedJob[..., X, Any],
        conn: SyncConnectionLike,
        job_id: uuid.UUID,
        timeout: float | None = None,
    ) -> X: ...

    @overload
    def wait_for_result(
        self: NamedJob[..., X, Any],
        conn: AsyncConnectionLike,
        job_id: uuid.UUID,
        timeout: float | None = None,
    ) -> Coroutine[Any, Any, X]: ...

    def wait_for_result(
        self, conn: AnyConnection, job_id: uuid.UUID, timeout: float | None = None
    ) -> Any:
        """:func:`sqlxmq_py.results.wait_for_result` for one of this job's runs, with the result
        decoded (and validated) as the job's declared return type.

        Raises:
            PayloadError: the stored result does not validate as the declared type.
            JobFailedError, JobCancelledError, JobNotFoundError, TimeoutError: as
                :func:`sqlxmq_py.results.wait_for_result`.
        """
        from .results import wait_for_result

        waited = wait_for_result(conn, job_id, timeout)
        if inspect.isawaitable(waited):
            return self._decode_later(waited, job_id)
        return self._decode_result(waited, job_id)

    async def _decode_later(self, waited: Awaitable[Any], job_id: uuid.UUID) -> Any:
        return self._decode_result(await waited, job_id)

    def _decode_result(self, value: Any, job_id: uuid.UUID) -> Any:
        codec = self.result_codec
        if codec is None or value is None:
            return value
        # the result came back as plain JSON: validate it as the declared type
        return codec.decode(encode_result(value), what=f"result of job {job_id} ({self.name!r})")

    def _new_builder(self) -> JobBuilder[Any]:
        o = self._options
        builder: JobBuilder[Any] = JobBuilder(
            o.name,
            channel_name=o.channel_name,
            retries=o.retries,
            retry_backoff=o.backoff,
            ordered=o.ordered,
            lease=o.lease,
            priority=o.priority,
            retain_for=o.retain_for,
        )
        if o.rate_keys:
            builder.set_rate_keys(o.rate_keys)
        return builder.set_dead_letter(o.dead_letter, channel_name=o.dead_letter_channel)

    def context_types(self) -> dict[str, type[Any] | str]:
        """The context parameters (after the first) and the class each one asks for.

        Resolved on first use, so annotations may name classes defined after the decorator ran.
        An annotation that cannot be resolved (a class local to a function, under
        ``from __future__ import annotations``) stays a string, matched by class name.
        """
        if self._context_types is None:
            try:
                hints = typing.get_type_hints(self._fn)
            except NameError:
                hints = {}
            params = inspect.signature(self._fn).parameters
            types: dict[str, type[Any] | str] = {}
            for name in self._context_params:
                hint = hints.get(name, params[name].annotation)
                wanted = hint if isinstance(hint, str) else typing.get_origin(hint) or hint
                if not isinstance(wanted, type | str):
                    raise ConfigurationError(
                        f"job {self.name!r}: parameter {name!r} must be annotated with a class "
                        f"to receive a context value, got {hint!r}"
                    )
                types[name] = wanted
            self._context_types = types
        return self._context_types

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Calls the job function directly (no queue involved)."""
        return self._fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<NamedJob {self.name!r}>"


class JobDecorator(Protocol):
    """What ``@job(...)`` with options returns: the decorator of a job function."""

    @overload
    def __call__(
        self, fn: Callable[Concatenate[CurrentJob[T], P], R], /
    ) -> NamedJob[Concatenate[CurrentJob[T], P], R, T]: ...

    @overload
    def __call__(
        self, fn: Callable[Concatenate[BlockingCurrentJob[T], P], R], /
    ) -> NamedJob[Concatenate[BlockingCurrentJob[T], P], R, T]: ...

    @overload
    def __call__(
        self, fn: Callable[Concatenate[ProcessJob[T], P], R], /
    ) -> NamedJob[Concatenate[ProcessJob[T], P], R, T]: ...


@overload
def job(
    fn: Callable[Concatenate[CurrentJob[T], P], R], /
) -> NamedJob[Concatenate[CurrentJob[T], P], R, T]: ...


@overload
def job(
    fn: Callable[Concatenate[BlockingCurrentJob[T], P], R], /
) -> NamedJob[Concatenate[BlockingCurrentJob[T], P], R, T]: ...


@overload
def job(
    fn: Callable[Concatenate[ProcessJob[T], P], R], /
) -> NamedJob[Concatenate[ProcessJob[T], P], R, T]: ...


@overload
def job(
    *,
    name: str | None = None,
    aliases: Sequence[str] = (),
    channel_name: str = "",
    retries: int = DEFAULT_RETRIES,
    backoff: Duration = DEFAULT_RETRY_BACKOFF,
    ordered: bool = False,
    auto_complete: bool = True,
    lease: Duration | None = None,
    priority: int = 0,
    timeout: Duration | None = None,
    retain_for: Duration | None = None,
    dead_letter: NamedJob[..., Any] | str | None = None,
    cron: str | None = None,
    isolation: Isolation = "thread",
    rate_keys: Sequence[str] = (),
) -> JobDecorator: ...


def job(
    fn: Callable[P, R] | None = None,
    /,
    *,
    name: str | None = None,
    aliases: Sequence[str] = (),
    channel_name: str = "",
    retries: int = DEFAULT_RETRIES,
    backoff: Duration = DEFAULT_RETRY_BACKOFF,
    ordered: bool = False,
    auto_complete: bool = True,
    lease: Duration | None = None,
    priority: int = 0,
    timeout: Duration | None = None,
    retain_for: Duration | None = None,
    dead_letter: NamedJob[..., Any] | str | None = None,
    cron: str | None = None,
    isolation: Isolation = "thread",
    rate_keys: Sequence[str] = (),
) -> Any:
    """Declares a job. Use bare (``@job``) or with options (``@job(channel_name="foo")``).

    Args:
        name: the name jobs are spawned and registered under (default: the function's module
            and qualified name, ``myapp.emails.send``: see :func:`default_name`).
        aliases: more names the job runs under (never spawned under): a job renamed keeps its
            old name here until no job of that name is queued.
        channel_name: default channel (default ``""``).
        retries: retries after a failed first attempt (default 4).
        backoff: wait before the first retry, doubled for each further one (default 1 s).
        ordered: run strictly in spawn order within the channel group (default False).
        auto_complete: a job that returns normally is completed (default True). With False,
            a job must call ``complete()`` itself, as in sqlxmq, or it runs again.
        lease: how long a runner holds the job before another may take it, unless renewed
            (default: the runner's, 30 s).
        priority: default priority within the channel group (higher runs first).
        timeout: an attempt running longer fails with ``JobTimeoutError`` (``async def`` jobs
            are cancelled; a thread job is failed when it finally returns).
        retain_for: keep finished jobs (and their results) in the history this long.
        dead_letter: a job (or job name) spawned with the payload and error when this job
            fails for good.
        cron: a crontab expression: the registry spawns this job at every tick (UTC; use
            ``JobRegistry.add_cron`` for a time zone, a payload or backfill).
        isolation: ``"process"`` runs a plain ``def`` job in one of the runner's worker
            processes (``set_processes``), for CPU-bound work: its timeout kills the process,
            and a process that dies fails the attempt with ``JobProcessDiedError``. The function
            takes a :class:`~sqlxmq_py.ProcessJob` and no context values, and must be
            importable by its module and name (not defined inside a function). Default
            ``"thread"``.
        rate_keys: the rate keys its jobs carry by default (see :mod:`sqlxmq_py.rate_limit`):
            a job starts only while every key's rule allows one more start.

    Raises:
        ConfigurationError: an option is invalid, or the function cannot be a job.
    """
    dead_letter_name: str | None
    dead_letter_channel: str | None = None
    if isinstance(dead_letter, NamedJob):
        dead_letter_name, dead_letter_channel = dead_letter.name, dead_letter.options.channel_name
    elif dead_letter is None or isinstance(dead_letter, str):
        dead_letter_name = None if dead_letter is None else check_name("dead_letter", dead_letter)
    else:
        raise ConfigurationError(f"dead_letter must be a job or a job name, got {dead_letter!r}")
    defaults = declared_options(
        name=name,
        aliases=aliases,
        channel_name=channel_name,
        retries=retries,
        backoff=backoff,
        ordered=ordered,
        auto_complete=auto_complete,
        lease=lease,
        priority=priority,
        timeout=timeout,
        retain_for=retain_for,
        dead_letter=(dead_letter_name, dead_letter_channel),
        cron=cron,
        isolation=isolation,
        rate_keys=rate_keys,
    )

    def decorate(func: Callable[..., Any]) -> NamedJob[..., Any, Any]:
        if not callable(func):
            raise ConfigurationError(f"@job decorates a function, got {func!r}")
        job_name = defaults.name or default_name(func)
        if not job_name:
            raise ConfigurationError(f"cannot name job {func!r}; pass name=")
        check_name("name", job_name)
        named = NamedJob(func, dataclasses.replace(defaults, name=job_name))
        if defaults.isolation == "process":
            check_process_job(named.name, func)
        return named

    if fn is not None:
        return decorate(fn)
    return decorate
