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
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Generic, ParamSpec, TypeVar, overload

from ._validate import Duration, check_int, check_name, to_timedelta
from .builder import DEFAULT_RETRIES, DEFAULT_RETRY_BACKOFF, JobBuilder
from .cron import check_cron
from .errors import ConfigurationError

__all__ = ["JobOptions", "NamedJob", "job"]

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True, kw_only=True)
class JobOptions:
    """The defaults a job was declared with; ``NamedJob.builder()`` starts from them."""

    name: str
    channel_name: str = ""
    retries: int = DEFAULT_RETRIES
    backoff: timedelta = DEFAULT_RETRY_BACKOFF
    ordered: bool = False
    auto_complete: bool = True
    lease: timedelta | None = None
    priority: int = 0
    timeout: timedelta | None = None
    retain_for: timedelta | None = None
    dead_letter: str | None = None
    dead_letter_channel: str | None = None
    cron: str | None = None


class NamedJob(Generic[P, R]):
    """A job function with its name and default options. Create one with ``@job``.

    Calling it calls the function directly, which is handy in tests.
    """

    def __init__(self, fn: Callable[P, R], options: JobOptions) -> None:
        """Wraps ``fn``; prefer the ``@job`` decorator, which validates the options."""
        self._fn = fn
        self._options = options
        self._is_async = inspect.iscoroutinefunction(fn)
        self._context_params = _context_parameters(fn, options.name)
        self._context_types: dict[str, type[Any] | str] | None = None
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

    def builder(self) -> JobBuilder:
        """A new :class:`JobBuilder` for this job, preset with its defaults."""
        return self._template.copy()

    def _new_builder(self) -> JobBuilder:
        o = self._options
        builder = JobBuilder(
            o.name,
            channel_name=o.channel_name,
            retries=o.retries,
            retry_backoff=o.backoff,
            ordered=o.ordered,
            lease=o.lease,
            priority=o.priority,
            retain_for=o.retain_for,
        )
        builder._dead_letter, builder._dead_letter_channel = o.dead_letter, o.dead_letter_channel
        return builder

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


def _context_parameters(fn: Callable[..., Any], name: str) -> tuple[str, ...]:
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"job {name!r}: cannot read the function's signature") from exc
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if not params or params[0].kind not in positional:
        raise ConfigurationError(
            f"job {name!r}: the function must take the running job as its first positional "
            "parameter, e.g. `async def my_job(current_job: CurrentJob) -> None`"
        )
    context = []
    for param in params[1:]:
        if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            raise ConfigurationError(f"job {name!r}: *args and **kwargs are not supported")
        if param.kind is inspect.Parameter.POSITIONAL_ONLY:
            raise ConfigurationError(
                f"job {name!r}: context parameter {param.name!r} must not be positional-only"
            )
        if param.annotation is inspect.Parameter.empty:
            raise ConfigurationError(
                f"job {name!r}: parameter {param.name!r} needs a type annotation; extra "
                "parameters receive the context value of that type (JobRegistry.set_context)"
            )
        context.append(param.name)
    return tuple(context)


@overload
def job(fn: Callable[P, R], /) -> NamedJob[P, R]: ...


@overload
def job(
    *,
    name: str | None = None,
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
) -> Callable[[Callable[P, R]], NamedJob[P, R]]: ...


def job(
    fn: Callable[P, R] | None = None,
    /,
    *,
    name: str | None = None,
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
) -> NamedJob[P, R] | Callable[[Callable[P, R]], NamedJob[P, R]]:
    """Declares a job. Use bare (``@job``) or with options (``@job(channel_name="foo")``).

    Args:
        name: the name jobs are spawned and registered under (default: the function's name).
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

    Raises:
        ConfigurationError: an option is invalid, or the function cannot be a job.
    """
    if name is not None:
        check_name("name", name)
        if not name:
            raise ConfigurationError("name must not be empty")
    if not isinstance(ordered, bool):
        raise ConfigurationError(f"ordered must be a bool, got {ordered!r}")
    if not isinstance(auto_complete, bool):
        raise ConfigurationError(f"auto_complete must be a bool, got {auto_complete!r}")
    dead_letter_name: str | None
    dead_letter_channel: str | None
    if isinstance(dead_letter, NamedJob):
        dead_letter_name, dead_letter_channel = dead_letter.name, dead_letter.options.channel_name
    elif dead_letter is None or isinstance(dead_letter, str):
        dead_letter_name = None if dead_letter is None else check_name("dead_letter", dead_letter)
        dead_letter_channel = None
    else:
        raise ConfigurationError(f"dead_letter must be a job or a job name, got {dead_letter!r}")
    defaults = JobOptions(
        name=name or "",
        channel_name=check_name("channel_name", channel_name),
        retries=check_int("retries", retries, minimum=0, maximum=2**31 - 2),
        backoff=to_timedelta("backoff", backoff),
        ordered=ordered,
        auto_complete=auto_complete,
        lease=None if lease is None else to_timedelta("lease", lease, allow_zero=False),
        priority=check_int("priority", priority, minimum=-(2**31 - 1)),
        timeout=None if timeout is None else to_timedelta("timeout", timeout, allow_zero=False),
        retain_for=None if retain_for is None else to_timedelta("retain_for", retain_for),
        dead_letter=dead_letter_name,
        dead_letter_channel=dead_letter_channel,
        cron=None if cron is None else check_cron(cron),
    )

    def decorate(func: Callable[P, R]) -> NamedJob[P, R]:
        if not callable(func):
            raise ConfigurationError(f"@job decorates a function, got {func!r}")
        job_name = defaults.name or getattr(func, "__name__", "")
        if not job_name:
            raise ConfigurationError(f"cannot name job {func!r}; pass name=")
        check_name("name", job_name)
        return NamedJob(func, dataclasses.replace(defaults, name=job_name))

    if fn is not None:
        return decorate(fn)
    return decorate
