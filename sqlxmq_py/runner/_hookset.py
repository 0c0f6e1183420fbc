"""The runner's hooks, called from one place: a hook that raises is logged, never propagated."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from .._text import error_summary
from ..current_job import JobInfo
from ..hooks import RunnerHooks

__all__ = ["HookSet"]


class HookSet:
    """The ``RunnerHooks`` a runner was given; falsy when there are none."""

    __slots__ = ("_hooks", "_log", "any")

    def __init__(self, hooks: tuple[RunnerHooks, ...], log: Any) -> None:
        """Calls ``hooks``; their failures go to ``log`` as ``hook_failed``."""
        self._hooks = hooks
        self._log = log
        self.any = bool(hooks)
        """Whether there is a hook at all (an attribute: the hot path reads it per job)."""

    def __bool__(self) -> bool:
        return self.any

    def call(self, event: str, *args: Any) -> None:
        """Calls every hook's ``event`` method with ``args``."""
        for hooks in self._hooks:
            try:
                getattr(hooks, event)(*args)
            except Exception as exc:
                self._log.error(
                    "hook_failed",
                    hook=type(hooks).__name__,
                    hook_event=event,
                    error=error_summary(exc),
                )

    @contextlib.contextmanager
    def running(self, info: JobInfo) -> Iterator[None]:
        """Tells ``job_started``, then wraps the job function's run in every hook's
        ``running`` context."""
        self.call("job_started", info)
        with contextlib.ExitStack() as wrappers:
            for hooks in self._hooks:
                wrappers.enter_context(hooks.running(info))
            yield
