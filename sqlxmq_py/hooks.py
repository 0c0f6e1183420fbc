"""Extension points for instrumentation (metrics, tracing): runner hooks and spawn hooks.

A :class:`RunnerHooks` subclass overrides the events it cares about and is given to a runner
with ``JobRunnerOptions.set_hooks``. Spawn hooks (:func:`add_spawn_hook`) see every job just
before it is spawned, e.g. to add the current trace context to its headers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

# the spawn hooks live beside JobBuilder, which runs them: hooks imports builder, never the
# other way round
from .builder import SPAWN_HOOKS, JobBuilder

if TYPE_CHECKING:
    from .current_job import JobInfo

__all__ = ["JobOutcome", "RunnerHooks", "add_spawn_hook", "remove_spawn_hook", "spawn_hooks"]

JobOutcome: TypeAlias = Literal[
    "completed",
    "retrying",
    "failed",
    "cancelled",
    "lease_lost",
    "interrupted",
    "abandoned",
    "parked",
]
"""How an attempt ended: completed; failed with a retry to come; failed for good; cancelled;
its lease went elsewhere; interrupted (handed back unfinished by a stopping runner, the
attempt not counted; called ``released`` before migration 0009); returned without
completing (``auto_complete=False``) or ignored its cancellation; parked (the runner does
not know its name: it waits for one that does, its attempt not counted)."""


class RunnerHooks:
    """Runner events; every method does nothing unless overridden. Methods run on the runner's
    event loop (except :meth:`leases_renewed`, called from the lease keeper's thread) and must
    be quick and must not raise: an exception is logged and ignored."""

    def polled(self, leased: int, wanted: int) -> None:
        """A poll leased ``leased`` jobs of the ``wanted``."""

    def job_started(self, job: JobInfo) -> None:
        """A job's function is about to run."""

    @contextlib.contextmanager
    def running(self, job: JobInfo) -> Iterator[None]:
        """Wraps the job function's run (entered in the job's task, whose context a thread job
        runs in): e.g. a tracing span around it."""
        yield

    def job_finished(self, job: JobInfo, outcome: JobOutcome, duration_s: float | None) -> None:
        """An attempt's outcome is known (and durable)."""

    def leases_renewed(self, renewed: int, lost: int) -> None:
        """A lease renewal ran (from the lease keeper's thread)."""


SpawnHook: TypeAlias = Callable[[JobBuilder[Any]], None]
"""A spawn hook: sees (and may amend) each builder just before its job is written."""


def add_spawn_hook(hook: SpawnHook) -> None:
    """Calls ``hook(builder)`` for every job about to be spawned (it may set headers)."""
    SPAWN_HOOKS.add(hook)


def remove_spawn_hook(hook: SpawnHook) -> None:
    """Undoes :func:`add_spawn_hook`."""
    SPAWN_HOOKS.remove(hook)


def spawn_hooks() -> tuple[SpawnHook, ...]:
    """The spawn hooks now installed."""
    return SPAWN_HOOKS.hooks
