"""Running a runner inside a test, with short intervals so that tests are quick."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from sqlxmq_py import JobRegistry, JobRunnerHandle, NamedJob
from sqlxmq_py.hooks import RunnerHooks

Runner = Callable[..., Any]


@asynccontextmanager
async def start_runner(
    dsn: str,
    jobs: list[NamedJob[..., Any]] | JobRegistry,
    *,
    concurrency: tuple[int, int] = (4, 8),
    channel_names: list[str] | None = None,
    lease: float | None = None,
    keep_alive: bool = True,
    poll_interval: float = 0.5,
    stop_timeout: float | None = 5.0,
    hooks: list[RunnerHooks] | None = None,
    max_payload_bytes: int | None = None,
    cancel_grace: float | None = None,
) -> AsyncIterator[JobRunnerHandle]:
    registry = jobs if isinstance(jobs, JobRegistry) else JobRegistry(jobs)
    options = (
        registry.runner(dsn)
        .set_concurrency(*concurrency)
        .set_channel_names(channel_names)
        .set_keep_alive(keep_alive)
        .set_poll_interval(poll_interval)
        .set_maintenance_interval(0.1)
        .set_hooks(*(hooks or []))
    )
    if lease is not None:
        options.set_lease(lease)
    if max_payload_bytes is not None:
        options.set_max_payload_bytes(max_payload_bytes)
    if cancel_grace is not None:
        options.set_cancel_grace(cancel_grace)
    handle = await options.run()
    try:
        yield handle
    finally:
        await handle.stop(timeout=stop_timeout)


@pytest.fixture
def runner(dsn: str) -> Runner:
    """``async with runner([jobs], **options) as handle:`` runs a runner on the test database."""

    def make(jobs: list[NamedJob[..., Any]] | JobRegistry, **options: Any) -> Any:
        return start_runner(dsn, jobs, **options)

    return make
