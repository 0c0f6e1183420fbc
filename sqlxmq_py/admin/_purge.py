"""Purging old failed jobs and history, and the per-channel concurrency limits."""

from __future__ import annotations

from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple, overload

from .. import _connections
from .._connections import AnyConnection, AsyncConnectionLike, Rows, SyncConnectionLike
from .._validate import check_int, check_name
from ..errors import ConfigurationError
from ..sql import query

__all__ = ["PurgeResult", "channel_limits", "purge", "set_channel_limit"]


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


@overload
def set_channel_limit(
    conn: SyncConnectionLike, channel_name: str, max_running: int | None
) -> None: ...


@overload
def set_channel_limit(
    conn: AsyncConnectionLike, channel_name: str, max_running: int | None
) -> Coroutine[Any, Any, None]: ...


def set_channel_limit(
    conn: AnyConnection, channel_name: str, max_running: int | None
) -> Coroutine[Any, Any, None] | None:
    """Lets at most ``max_running`` jobs of the channel run at once across all runners
    (``None`` removes the limit). Runners pick the change up within a few seconds."""
    check_name("channel_name", channel_name)
    if max_running is None:
        return _connections.run(
            conn, query("delete_channel_limit"), {"channel_name": channel_name}, _nothing
        )
    params = {
        "channel_name": channel_name,
        "max_running": check_int("max_running", max_running, minimum=0),
    }
    return _connections.run(conn, query("set_channel_limit"), params, _nothing)


def _nothing(_rows: Rows) -> None:
    return None


def _limits(rows: Rows) -> dict[str, int]:
    return dict(rows)


@overload
def channel_limits(conn: SyncConnectionLike) -> dict[str, int]: ...


@overload
def channel_limits(conn: AsyncConnectionLike) -> Coroutine[Any, Any, dict[str, int]]: ...


def channel_limits(conn: AnyConnection) -> dict[str, int] | Coroutine[Any, Any, dict[str, int]]:
    """The channel limits set with :func:`set_channel_limit`."""
    return _connections.run(conn, query("channel_limits"), None, _limits)
