"""What a job is declared with: ``JobOptions``, the defaults ``@job`` records and builders start
from, and the checks of the options that concern how the runner calls it."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from .builder import DEFAULT_RETRIES, DEFAULT_RETRY_BACKOFF
from .errors import ConfigurationError

__all__ = ["Isolation", "JobOptions", "check_isolation", "check_process_job"]

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
