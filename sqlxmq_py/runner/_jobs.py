"""What a runner needs from the jobs it runs, as protocols: the runner never imports the
registry (which builds runners), so the two cannot import each other in a circle."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..codec import Codec
    from ..cron import CronSchedule
    from ..current_job import JobInfo
    from ..job import JobOptions
    from ..rate_limit import RateLimit

__all__ = ["JobSource", "RunnableJob"]


class RunnableJob(Protocol):
    """A registered job as the runner calls it (``NamedJob`` is one)."""

    @property
    def name(self) -> str:
        """The job's name."""
        ...

    @property
    def options(self) -> JobOptions:
        """Its ``@job`` options (timeout, auto_complete, ...)."""
        ...

    @property
    def fn(self) -> Callable[..., Any]:
        """The job function."""
        ...

    @property
    def is_async(self) -> bool:
        """Whether it is an ``async def`` (else it runs in a thread)."""
        ...

    @property
    def payload_codec(self) -> Codec | None:
        """Its payload type's codec, if it declares one."""
        ...

    @property
    def result_codec(self) -> Codec | None:
        """Its result type's codec, if it declares one."""
        ...


class JobSource(Protocol):
    """The jobs a runner runs (``JobRegistry`` is one)."""

    @property
    def names(self) -> frozenset[str]:
        """Every name (and alias) a job runs under."""
        ...

    def get(self, name: str) -> RunnableJob | None:
        """The job of ``name``, if any."""
        ...

    def context_for(self, named: Any) -> dict[str, object]:
        """The context keyword arguments of a job ``get`` returned."""
        ...

    @property
    def error_handler(self) -> Callable[[JobInfo, BaseException], Awaitable[None] | None] | None:
        """Told of every failed attempt, if set."""
        ...

    @property
    def retain_for(self) -> timedelta:
        """How long completed jobs are kept unless they say."""
        ...

    @property
    def schedules(self) -> tuple[CronSchedule, ...]:
        """Recurring schedules to upsert at start."""
        ...

    @property
    def rate_limits(self) -> tuple[RateLimit, ...]:
        """Rate rules to write at start."""
        ...

    def check(self) -> None:
        """Raises ConfigurationError if a job could never run."""
        ...
