"""Rate rules: setting, removing and listing the limits on starts per key (migration 0011; see
:mod:`sqlxmq_py.rate_limit` for what a rule means).

A rule is a row of ``mq_rate_limits``; leases read it at every start of a job carrying a key it
names, so a change applies from the next lease, across every runner, with nothing to notify.
"""

from __future__ import annotations

from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, overload

from .. import _connections
from .._connections import AnyConnection, AsyncConnectionLike, Rows, SyncConnectionLike
from .._validate import Duration, check_int
from ..rate_limit import RateLimit, rate_limit, rule_params
from ..sql import query

__all__ = [
    "BUSIEST_KEYS",
    "RateKeyWindow",
    "busiest_rate_keys",
    "list_rate_limits",
    "remove_rate_limit",
    "set_rate_limit",
]

BUSIEST_KEYS = 100
"""How many keys :func:`busiest_rate_keys` reads by default (the dashboard's and API's bound)."""


def _nothing(_rows: Rows) -> None:
    return None


@overload
def set_rate_limit(
    conn: SyncConnectionLike, key_pattern: str, max_starts: int, *, per: Duration
) -> None: ...


@overload
def set_rate_limit(
    conn: AsyncConnectionLike, key_pattern: str, max_starts: int, *, per: Duration
) -> Coroutine[Any, Any, None]: ...


def set_rate_limit(
    conn: AnyConnection, key_pattern: str, max_starts: int, *, per: Duration
) -> Coroutine[Any, Any, None] | None:
    """Allows at most ``max_starts`` starts in any window of ``per`` (a timedelta or seconds)
    for the jobs carrying a key that ``key_pattern`` names: the key itself (``"openai"``: one
    budget for all of them), or every key under a prefix ending in ``*`` (``"customer:*"``:
    a budget per key). Replaces the pattern's rule if it has one.

    Raises:
        RateLimitError: an empty or too long pattern, ``*`` elsewhere than at its end,
            ``max_starts`` below 1 or ``per`` not positive.
    """
    rule = rate_limit(key_pattern, max_starts, per)
    return _connections.run(conn, query("rate_limit_set"), rule_params(rule), _nothing)


def _removed(rows: Rows) -> bool:
    return bool(rows)


@overload
def remove_rate_limit(conn: SyncConnectionLike, key_pattern: str) -> bool: ...


@overload
def remove_rate_limit(conn: AsyncConnectionLike, key_pattern: str) -> Coroutine[Any, Any, bool]: ...


def remove_rate_limit(conn: AnyConnection, key_pattern: str) -> bool | Coroutine[Any, Any, bool]:
    """Removes the rule of ``key_pattern`` (its keys are no longer limited, unless a prefix
    rule names them); returns whether it existed. The jobs it deferred become due now and are
    judged again by the next lease.

    Raises:
        RateLimitError: the pattern is not a valid pattern.
    """
    pattern = rate_limit(key_pattern, 1, timedelta(seconds=1)).key_pattern
    return _connections.run(conn, query("rate_limit_delete"), {"key_pattern": pattern}, _removed)


def _rules(rows: Rows) -> list[RateLimit]:
    return [
        RateLimit(key_pattern=pattern, max_starts=starts, period=period)
        for pattern, starts, period in rows
    ]


@overload
def list_rate_limits(conn: SyncConnectionLike) -> list[RateLimit]: ...


@overload
def list_rate_limits(conn: AsyncConnectionLike) -> Coroutine[Any, Any, list[RateLimit]]: ...


def list_rate_limits(
    conn: AnyConnection,
) -> list[RateLimit] | Coroutine[Any, Any, list[RateLimit]]:
    """The rate rules, by pattern."""
    return _connections.run(conn, query("rate_limits"), None, _rules)


@dataclass(frozen=True, kw_only=True)
class RateKeyWindow:
    """A rate key with starts in its current window, under the rule that limits it."""

    rate_key: str
    max_starts: int
    period: timedelta
    starts_in_window: int
    """Starts in the window of ``period`` ending now."""
    next_start_at: datetime | None
    """When the key allows a start again (None: it allows one now)."""


def _windows(rows: Rows) -> list[RateKeyWindow]:
    return [
        RateKeyWindow(
            rate_key=key,
            max_starts=starts,
            period=period,
            starts_in_window=in_window,
            next_start_at=next_at,
        )
        for key, starts, period, in_window, next_at in rows
    ]


@overload
def busiest_rate_keys(conn: SyncConnectionLike, limit: int = ...) -> list[RateKeyWindow]: ...


@overload
def busiest_rate_keys(
    conn: AsyncConnectionLike, limit: int = ...
) -> Coroutine[Any, Any, list[RateKeyWindow]]: ...


def busiest_rate_keys(
    conn: AnyConnection, limit: int = BUSIEST_KEYS
) -> list[RateKeyWindow] | Coroutine[Any, Any, list[RateKeyWindow]]:
    """The limited keys with starts in their current window, the fullest (starts over budget)
    first, at most ``limit``: what each has used and when a spent one allows a start again.
    Keys without a rule, or whose starts all left the window, are not listed."""
    params = {"limit": check_int("limit", limit, minimum=1)}
    return _connections.run(conn, query("rate_windows_busiest"), params, _windows)
