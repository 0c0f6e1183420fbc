"""A runner's settings, frozen (built by ``JobRunnerOptions``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from psycopg_pool import AsyncConnectionPool

from ..hooks import RunnerHooks
from ._jobs import JobSource
from ._processes import DEFAULT_PROCESS_LIMITS, ProcessLimits

__all__ = ["RunnerConfig"]


@dataclass(frozen=True, kw_only=True)
class RunnerConfig:
    """Everything a runner was configured with (see ``JobRunnerOptions``)."""

    registry: JobSource
    pool: AsyncConnectionPool[Any] | str | None
    min_concurrency: int
    max_concurrency: int
    channel_names: Sequence[str] | None
    keep_alive: bool
    default_lease: timedelta
    poll_interval: float
    maintenance_interval: float
    durable_leases: bool = False
    hooks: tuple[RunnerHooks, ...] = ()
    cancel_grace: float = 5.0
    max_payload_bytes: int = 64 * 1024 * 1024
    prepared_statements: bool | None = None
    listen_dsn: str | None = None
    processes: ProcessLimits = DEFAULT_PROCESS_LIMITS
