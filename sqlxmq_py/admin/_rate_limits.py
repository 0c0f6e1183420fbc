"""Rate rules: setting, removing and listing the limits on starts per key (migration 0011; see
:mod:`sqlxmq_py.rate_limit` for what a rule means).

A rule is a row of ``mq_rate_limits``; leases read it at every start of a job carrying a key it
names, so a change applies from the next lease, across every runner, with nothing to notify.
"""

from __future__ import annotations

from collections.abc import Coroutine
from datetime import timedelta
from typing import Any, overload

from .. import _connections
from .._connections import AnyConnection, AsyncConnectionLike, Rows, SyncConnectionLike
from .._validate import Duration
from ..rate_limit import RateLimit, rate_limit, rule_params
from ..sql import query

__all__ = ["list_rate_limits", "remove_rate_limit", "set_rate_limit"]


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
    rule names them); returns whether it existed. Jobs already deferred keep their instant.

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
