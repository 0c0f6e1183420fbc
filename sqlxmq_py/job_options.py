"""What a job is declared with: ``JobOptions``, the defaults ``@job`` records and builders start
from, and the checks of the options that concern how the runner calls it."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from ._crontab import check_cron
from ._validate import Duration, check_bool, check_int, check_name, to_timedelta
from .builder import DEFAULT_RETRIES, DEFAULT_RETRY_BACKOFF
from .errors import ConfigurationError
from .rate_limit import check_rate_keys

__all__ = ["Isolation", "JobOptions", "check_isolation", "check_process_job", "declared_options"]

Isolation = Literal["thread", "process"]
"""Where a plain ``def`` job runs: in one of the runner's threads, or in a worker process."""


@dataclass(frozen=True, kw_only=True)
class JobOptions:
    """The defaults a job was declared with; ``NamedJob.builder()`` starts from them."""

    name: str
    aliases: tuple[str, ...] = ()
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
    isolation: Isolation = "thread"
    rate_keys: tuple[str, ...] = ()


def declared_options(
    *,
    name: str | None,
    aliases: Sequence[str],
    channel_name: str,
    retries: int,
    backoff: Duration,
    ordered: bool,
    auto_complete: bool,
    lease: Duration | None,
    priority: int,
    timeout: Duration | None,
    retain_for: Duration | None,
    dead_letter: tuple[str | None, str | None],
    cron: str | None,
    isolation: Isolation,
    rate_keys: Sequence[str],
) -> JobOptions:
    """The options given to ``@job``, each checked (a ``ConfigurationError`` names the first
    that is wrong); ``dead_letter`` is the dead letter's name and channel, already resolved.
    An empty ``name`` stands for the function's default name."""
    if name is not None:
        check_name("name", name)
        if not name:
            raise ConfigurationError("name must not be empty")
    check_bool("ordered", ordered)
    check_bool("auto_complete", auto_complete)
    if isinstance(aliases, str):
        raise ConfigurationError("aliases must be a list of names, not one str")
    return JobOptions(
        name=name or "",
        aliases=tuple(check_name("aliases", alias) for alias in aliases),
        channel_name=check_name("channel_name", channel_name),
        retries=check_int("retries", retries, minimum=0, maximum=2**31 - 2),
        backoff=to_timedelta("backoff", backoff),
        ordered=ordered,
        auto_complete=auto_complete,
        lease=None if lease is None else to_timedelta("lease", lease, allow_zero=False),
        priority=check_int("priority", priority, minimum=-(2**31 - 1)),
        timeout=None if timeout is None else to_timedelta("timeout", timeout, allow_zero=False),
        retain_for=None if retain_for is None else to_timedelta("retain_for", retain_for),
        dead_letter=dead_letter[0],
        dead_letter_channel=dead_letter[1],
        cron=None if cron is None else check_cron(cron),
        isolation=check_isolation(isolation),
        rate_keys=check_rate_keys(rate_keys),
    )


def check_isolation(isolation: object) -> Isolation:
    """``isolation`` as given to ``@job``, checked."""
    if isolation == "thread":
        return "thread"
    if isolation == "process":
        return "process"
    raise ConfigurationError(f"isolation must be 'thread' or 'process', got {isolation!r}")


def check_process_job(name: str, fn: Callable[..., Any]) -> None:
    """A process-isolated job must be a plain function that its worker process can import by
    its module and qualified name, and take nothing but the job."""
    where = f"job {name!r} (isolation='process')"
    if inspect.iscoroutinefunction(fn):
        raise ConfigurationError(f"{where}: must be a plain def, not async def")
    if "<locals>" in getattr(fn, "__qualname__", "<locals>"):
        raise ConfigurationError(
            f"{where}: must be defined at module level, so that its process can import it"
        )
    if len(inspect.signature(fn).parameters) != 1:
        raise ConfigurationError(
            f"{where}: takes only the running job (context values stay in the runner's process)"
        )
