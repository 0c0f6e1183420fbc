"""Purging old failed jobs and history."""

from __future__ import annotations

from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple, overload

from .. import _connections
from .._connections import AnyConnection, AsyncConnectionLike, Rows, SyncConnectionLike
from ..errors import ConfigurationError
from ..sql import query

__all__ = ["PurgeResult", "purge"]


@dataclass(frozen=True, kw_only=True)
class PurgeResult:
    """How many rows a purge removed."""

    failed: int
    history: int


def _cutoff(option: str, value: datetime | timedelta | None) -> datetime | timedelta | None:
    if value is None or isinstance(value, timedelta):
        return value
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value
    raise ConfigurationError(
        f"{option} must be a timedelta (an age) or a timezone-aware datetime, got {value!r}"
    )


@overload
def purge(
    conn: SyncConnectionLike,
    *,
    failed_before: datetime | timedelta | None = None,
    history_before: datetime | timedelta | None = None,
) -> PurgeResult: ...


@overload
def purge(
    conn: AsyncConnectionLike,
    *,
    failed_before: datetime | timedelta | None = None,
    history_before: datetime | timedelta | None = None,
) -> Coroutine[Any, Any, PurgeResult]: ...


def purge(
    conn: AnyConnection,
    *,
    failed_before: datetime | timedelta | None = None,
    history_before: datetime | timedelta | None = None,
) -> PurgeResult | Coroutine[Any, Any, PurgeResult]:
    """Removes expired history (always), history that finished before ``history_before``, and
    failed jobs that failed before ``failed_before``. Each cutoff is a timezone-aware datetime
    or an age (a timedelta back from now)."""
    failed = _cutoff("failed_before", failed_before)
    history = _cutoff("history_before", history_before)
    params = {
        "failed": failed is not None,
        "failed_at": failed if isinstance(failed, datetime) else None,
        "failed_age": failed if isinstance(failed, timedelta) else None,
        "history_at": history if isinstance(history, datetime) else None,
        "history_age": history if isinstance(history, timedelta) else None,
    }
    return _connections.run(conn, query("purge"), params, _purged)


class _PurgedRow(NamedTuple):
    """The row of ``purge``: rows removed from each table."""

    failed: int
    history: int


def _purged(rows: Rows) -> PurgeResult:
    r = _PurgedRow(*rows[0])
    return PurgeResult(failed=r.failed, history=r.history)
