"""Purging old failed jobs and history."""

from __future__ import annotations

from collections.abc import Coroutine
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, NamedTuple, overload

from .. import _connections
from .._connections import AnyConnection, AsyncConnectionLike, Rows, SyncConnectionLike
from ..errors import ConfigurationError
from ..sql import query
from ._counts import BlockedChain, _chains

__all__ = ["PurgeResult", "purge"]


@dataclass(frozen=True, kw_only=True)
class PurgeResult:
    """How many rows a purge removed, and the failed chain heads it kept."""

    failed: int
    history: int
    chains_kept: tuple[BlockedChain, ...] = ()
    """The ordered chains whose failed head was old enough to purge but was kept, because
    deleting it would run the jobs waiting behind it (purge with ``release_chains=True``)."""


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
    release_chains: bool = False,
) -> PurgeResult: ...


@overload
def purge(
    conn: AsyncConnectionLike,
    *,
    failed_before: datetime | timedelta | None = None,
    history_before: datetime | timedelta | None = None,
    release_chains: bool = False,
) -> Coroutine[Any, Any, PurgeResult]: ...


def purge(
    conn: AnyConnection,
    *,
    failed_before: datetime | timedelta | None = None,
    history_before: datetime | timedelta | None = None,
    release_chains: bool = False,
) -> PurgeResult | Coroutine[Any, Any, PurgeResult]:
    """Removes expired history (always), history that finished before ``history_before``, and
    failed jobs that failed before ``failed_before``. Each cutoff is a timezone-aware datetime
    or an age (a timedelta back from now).

    A purge never releases an ordered chain silently: the failed head of a chain with jobs
    waiting behind it (deleting it would run them) is kept, and listed in the result's
    ``chains_kept``, unless ``release_chains`` is true."""
    failed = _cutoff("failed_before", failed_before)
    history = _cutoff("history_before", history_before)
    params: dict[str, object] = {
        "failed": failed is not None,
        "failed_at": failed if isinstance(failed, datetime) else None,
        "failed_age": failed if isinstance(failed, timedelta) else None,
        "history_at": history if isinstance(history, datetime) else None,
        "history_age": history if isinstance(history, timedelta) else None,
        "release_chains": bool(release_chains),
    }
    keeps = failed is not None and not release_chains
    if _connections.is_async(conn):
        return _purge_async(conn, params, keeps)
    result = _purged(_connections.fetch_sync(conn, query("purge"), params))
    if not keeps:
        return result
    kept = _chains(_connections.fetch_sync(conn, query("purge_chains"), params))
    return replace(result, chains_kept=tuple(kept))


async def _purge_async(
    conn: AsyncConnectionLike, params: dict[str, object], keeps: bool
) -> PurgeResult:
    result = _purged(await _connections.fetch_async(conn, query("purge"), params))
    if not keeps:
        return result
    kept = _chains(await _connections.fetch_async(conn, query("purge_chains"), params))
    return replace(result, chains_kept=tuple(kept))


class _PurgedRow(NamedTuple):
    """The row of ``purge``: rows removed from each table."""

    failed: int
    history: int


def _purged(rows: Rows) -> PurgeResult:
    r = _PurgedRow(*rows[0])
    return PurgeResult(failed=r.failed, history=r.history)
