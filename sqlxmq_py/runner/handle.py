"""JobRunnerHandle: a running runner, to observe and stop."""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    from ._runner import Runner

__all__ = ["JobRunnerHandle"]


class JobRunnerHandle:
    """Controls a runner started with ``JobRunnerOptions.run()``.

    ``async with`` stops the runner when the block exits.
    """

    def __init__(self, runner: Runner) -> None:
        """Wraps a started runner."""
        self._runner = runner

    def num_running_jobs(self) -> int:
        """How many job functions are running now."""
        return self._runner.num_running_jobs()

    async def wait_jobs_finish(self, timeout: float | None = None) -> bool:
        """Waits until no job is running; returns False if ``timeout`` seconds passed first."""
        return await self._runner.wait_jobs_finish(timeout)

    async def stop(self, timeout: float | None = 30.0) -> None:
        """Stops leasing and waits up to ``timeout`` seconds for running jobs; jobs still
        running then are cancelled and their leases handed back without using an attempt.

        Plain ``def`` jobs cannot be interrupted: their threads run on, but their leases are
        handed back, so another runner may start them again.
        """
        await self._runner.stop(timeout)

    async def cancel_running_jobs(self) -> None:
        """Cancels the running ``async def`` jobs now, e.g. on a second SIGTERM while ``stop()``
        waits for them; ``stop()`` then hands their leases back without using up an attempt.
        Thread jobs cannot be interrupted."""
        await self._runner.cancel_running()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
