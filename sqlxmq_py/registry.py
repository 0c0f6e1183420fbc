"""JobRegistry: the jobs a runner can run, their error handler and their context values."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Self, TypeAlias

from ._validate import Duration, to_timedelta
from .cron import CronSchedule
from .errors import ConfigurationError, DuplicateJobError
from .job import NamedJob
from .rate_limit import RateLimit, rate_limit
from .runner.options import JobRunnerOptions

if TYPE_CHECKING:
    from psycopg_pool import AsyncConnectionPool

    from .current_job import JobInfo

__all__ = ["ErrorHandler", "JobRegistry"]

ErrorHandler: TypeAlias = "Callable[[JobInfo, BaseException], Awaitable[None] | None]"
"""Called with the job and the error for every failed attempt; may be sync or async."""


class JobRegistry:
    """The set of jobs a runner can run, by name.

    Raises:
        DuplicateJobError: two jobs share a name.
    """

    def __init__(self, jobs: Iterable[NamedJob[..., Any]]) -> None:
        """Registers ``jobs`` (``@job``-decorated functions)."""
        self._jobs: dict[str, NamedJob[..., Any]] = {}
        self._by_name: dict[str, NamedJob[..., Any]] = {}  # names and aliases
        for named in jobs:
            if not isinstance(named, NamedJob):
                raise ConfigurationError(
                    f"JobRegistry takes @job-decorated functions, got {named!r}"
                )
            for name in (named.name, *named.options.aliases):
                if name in self._by_name:
                    raise DuplicateJobError(
                        f"two jobs are named {name!r}: {self._by_name[name].fn!r} and "
                        f"{named.fn!r}; give one of them @job(name=...)"
                    )
                self._by_name[name] = named
            self._jobs[named.name] = named
        self._error_handler: ErrorHandler | None = None
        self._context: dict[type[Any], object] = {}
        self._retain_for = timedelta(0)
        self._schedules: dict[str, CronSchedule] = {}
        self._rate_limits: dict[str, RateLimit] = {}
        for named in self._jobs.values():
            if named.options.cron is not None:
                self.add_cron(named.options.cron, named)

    @property
    def names(self) -> frozenset[str]:
        """The names the registered jobs run under (their aliases included)."""
        return frozenset(self._by_name)

    def get(self, name: str) -> NamedJob[..., Any] | None:
        """The job registered under ``name`` (or with it as an alias), if any."""
        return self._by_name.get(name)

    @property
    def error_handler(self) -> ErrorHandler | None:
        """The handler set with :meth:`set_error_handler`."""
        return self._error_handler

    def set_error_handler(self, handler: ErrorHandler | None) -> Self:
        """Calls ``handler(job, error)`` for every failed attempt (sync or async).

        The failure is recorded whatever the handler does; an error it raises is logged.
        """
        if handler is not None and not callable(handler):
            raise ConfigurationError(f"error handler must be callable, got {handler!r}")
        self._error_handler = handler
        return self

    @property
    def retain_for(self) -> timedelta:
        """How long finished jobs are kept by default (see :meth:`set_retain_for`)."""
        return self._retain_for

    def set_retain_for(self, retain_for: Duration) -> Self:
        """Keeps finished jobs (with their results) in the history this long, unless a job
        says otherwise (default: not kept)."""
        self._retain_for = to_timedelta("retain_for", retain_for)
        return self

    @property
    def schedules(self) -> tuple[CronSchedule, ...]:
        """The recurring schedules added with :meth:`add_cron` or ``@job(cron=...)``."""
        return tuple(self._schedules.values())

    def add_cron(
        self,
        cron: str,
        job: NamedJob[..., Any],
        *,
        payload: object = None,
        name: str | None = None,
        tz: str = "UTC",
        backfill: Duration = 0,
        channel_args: str = "",
        rate_keys: Sequence[str] | None = None,
    ) -> Self:
        """Spawns ``job`` at every tick of the crontab expression ``cron`` (in time zone
        ``tz``), exactly once per tick however many runners are up.

        Args:
            payload: the JSON payload of every tick's job.
            name: the schedule's name (default: the job's name); unique per database.
            backfill: ticks missed while no runner was up are spawned if they are at most this
                old (default 0: only ticks due in the last minute run).
            channel_args: channel args of the spawned jobs (the channel is the job's).
            rate_keys: the rate keys of every tick's job (default: the job's
                ``@job(rate_keys=...)``; ``[]``: none), stored with the schedule.
        """
        if not isinstance(job, NamedJob) or self._jobs.get(job.name) is not job:
            raise ConfigurationError(f"add_cron needs a job registered here, got {job!r}")
        schedule = CronSchedule.for_job(
            cron,
            job,
            payload=payload,
            name=name,
            tz=tz,
            backfill=backfill,
            channel_args=channel_args,
            rate_keys=rate_keys,
        )
        if schedule.name in self._schedules:
            raise ConfigurationError(
                f"schedule {schedule.name!r} is defined twice; give one of them name=..."
            )
        self._schedules[schedule.name] = schedule
        return self

    @property
    def rate_limits(self) -> tuple[RateLimit, ...]:
        """The rate rules added with :meth:`add_rate_limit`."""
        return tuple(self._rate_limits.values())

    def add_rate_limit(self, key_pattern: str, max_starts: int, *, per: Duration) -> Self:
        """Declares a rate rule (see ``sqlxmq_py.admin.set_rate_limit``): every runner of this
        registry writes it when it starts, replacing the pattern's rule in the database. A rule
        removed from the code stays in the database until ``admin.remove_rate_limit``.

        Raises:
            RateLimitError: an invalid pattern, ``max_starts`` below 1 or ``per`` not
                positive.
        """
        rule = rate_limit(key_pattern, max_starts, per)
        self._rate_limits[rule.key_pattern] = rule
        return self

    def set_context(self, *values: object) -> Self:
        """Makes ``values`` available to jobs: a job parameter annotated with a class receives
        the value of that class (e.g. an HTTP client, a settings object)."""
        for value in values:
            if value is None:
                raise ConfigurationError("a context value must not be None")
            self._context[type(value)] = value
        return self

    def context_for(self, named: NamedJob[..., Any]) -> dict[str, object]:
        """The keyword arguments that ``named`` receives from the context.

        Raises:
            ConfigurationError: no context value fits one of its parameters.
        """
        kwargs: dict[str, object] = {}
        for param, wanted in named.context_types().items():
            value = self._find_context(wanted)
            if value is None:
                label = wanted if isinstance(wanted, str) else wanted.__qualname__
                raise ConfigurationError(
                    f"job {named.name!r}: parameter {param!r} ({label}) is neither the running "
                    f"job nor a context value (registry.set_context(...) has none of type "
                    f"{label}). A job's data is its payload: declare its type on the first "
                    "parameter, e.g. `async def send(current_job: CurrentJob[Email])` with "
                    "Email a dataclass, and spawn it with "
                    "`send.builder().set_json(Email(...))`; extra parameters are for shared "
                    "objects given to set_context (an HTTP client, settings)"
                )
            kwargs[param] = value
        return kwargs

    def check(self) -> None:
        """Checks that every job can run: its context parameters have values and its declared
        payload and result types can be encoded. The runner calls this before it starts, so a
        job that could never run is refused then, not by failing its attempts.

        Raises:
            ConfigurationError: naming the job and what is wrong.
        """
        for named in self._jobs.values():
            self.context_for(named)
            named.payload_codec  # noqa: B018 - resolves the declared types, raising if unusable

    def _find_context(self, wanted: type[Any] | str) -> object | None:
        if isinstance(wanted, str):
            return next(
                (
                    v
                    for v in self._context.values()
                    if wanted in (type(v).__name__, type(v).__qualname__)
                ),
                None,
            )
        value = self._context.get(wanted)
        if value is None:
            value = next((v for v in self._context.values() if isinstance(v, wanted)), None)
        return value

    def runner(self, pool: AsyncConnectionPool[Any] | str | None = None) -> JobRunnerOptions:
        """Options for a runner of these jobs.

        Args:
            pool: an open ``AsyncConnectionPool``, a connection string, or ``None`` for
                ``$SQLXMQ_DSN``, ``$DATABASE_URL`` or else the embedded PostgreSQL.
        """
        return JobRunnerOptions(self, pool)
