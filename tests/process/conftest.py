"""Runner processes for process-level tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ..processes import Child, Processes

Spawner = Callable[..., Child]


@pytest.fixture
def worker_process(dsn: str, processes: Processes) -> Spawner:
    """Starts ``tests.process.worker`` processes; each is returned once it says it is ready
    (see :class:`tests.processes.Child`); leftovers are killed at teardown."""

    def start(*args: str) -> Child:
        return processes.python("-m", "tests.process.worker", dsn, *args, ready="ready")

    return start
