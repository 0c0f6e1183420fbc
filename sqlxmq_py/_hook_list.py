"""HookList: the thread-safe list of spawn hooks (``hooks.add_spawn_hook``), kept apart from
the builder that runs them and the module that installs them."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

__all__ = ["HookList"]

T = TypeVar("T")


class HookList(Generic[T]):
    """Callbacks that each see every item; added and removed from any thread.

    The hooks are held as a tuple replaced on every change, so running them reads one
    consistent set without a lock or a copy (spawning runs them on every job).
    """

    def __init__(self) -> None:
        """An empty list."""
        self._hooks: tuple[Callable[[T], None], ...] = ()
        self._lock = threading.Lock()

    def add(self, hook: Callable[[T], None]) -> None:
        """Adds ``hook`` after the others."""
        with self._lock:
            self._hooks = (*self._hooks, hook)

    def remove(self, hook: Callable[[T], None]) -> None:
        """Removes ``hook`` (its first occurrence); ``ValueError`` if it is not there."""
        with self._lock:
            hooks = list(self._hooks)
            hooks.remove(hook)
            self._hooks = tuple(hooks)

    @property
    def hooks(self) -> tuple[Callable[[T], None], ...]:
        """The hooks now installed, in order."""
        return self._hooks

    def run(self, items: Iterable[T]) -> None:
        """Calls every hook on every item, hook by hook."""
        for hook in self._hooks:
            for item in items:
                hook(item)
