"""Rate limits per key: at most ``max_starts`` starts of the jobs carrying a key in any window of
``period``, across every runner (migration 0011).

A job carries rate keys (``@job(rate_keys=[...])``, ``JobBuilder.add_rate_key``); a rule
(:class:`RateLimit`, set with ``sqlxmq_py.admin.set_rate_limit`` or
``JobRegistry.add_rate_limit``) names a key exactly (``"openai"``: one budget shared by every job
carrying ``"openai"``) or a prefix ending in ``*`` (``"customer:*"``: each key under it, e.g.
``"customer:acme"``, has a budget of its own). A key without a rule is not limited. This module
holds the value, the checks, and the writing of a registry's rules; the lease enforces the rules
in SQL.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from psycopg import AsyncConnection

from ._validate import Duration, check_int, check_text, to_timedelta
from .errors import ConfigurationError, RateLimitError
from .sql import query

__all__ = [
    "MAX_RATE_KEYS",
    "MAX_RATE_KEY_BYTES",
    "RateLimit",
    "check_rate_key",
    "check_rate_keys",
    "rate_limit",
    "rule_params",
    "write_rate_limits",
]

MAX_RATE_KEY_BYTES = 200
"""The longest rate key or rule pattern, in UTF-8 bytes (a key of the windows' index, and
carried by every job that has it)."""

MAX_RATE_KEYS = 16
"""The most rate keys one job may carry (each is checked, and locked, at every start)."""


@dataclass(frozen=True, kw_only=True)
class RateLimit:
    """A rule: at most ``max_starts`` starts in any window of ``period`` for the keys that
    ``key_pattern`` names (exactly, or every key under a prefix ending in ``*``, each with a
    budget of its own)."""

    key_pattern: str
    max_starts: int
    period: timedelta

    @property
    def per_key(self) -> bool:
        """Whether the pattern is a prefix (each key under it has its own budget)."""
        return self.key_pattern.endswith("*")


def _check_key(option: str, value: object, *, pattern: bool) -> str:
    try:
        text = check_text(option, value)
    except ConfigurationError as exc:
        raise RateLimitError(str(exc)) from None
    if not text:
        raise RateLimitError(f"{option} must not be empty")
    size = len(text) if text.isascii() else len(text.encode("utf-8"))
    if size > MAX_RATE_KEY_BYTES:
        raise RateLimitError(
            f"{option} must be at most {MAX_RATE_KEY_BYTES} bytes of UTF-8, got {size} bytes: "
            f"{text[:40]!r}…; hash a longer value and use the digest"
        )
    star = text.find("*")
    if star != -1 and not (pattern and star == len(text) - 1):
        where = "only as the last character of a rule's pattern" if pattern else "in a rule"
        raise RateLimitError(
            f"{option} may hold '*' {where} (a prefix rule such as 'customer:*'), got {text!r}"
        )
    return text


def check_rate_key(value: object) -> str:
    """A job's rate key, checked: a non-empty str of at most :data:`MAX_RATE_KEY_BYTES` bytes
    without ``*`` (which only rules use).

    Raises:
        RateLimitError: the key is not a str, empty, too long or holds ``*``.
    """
    return _check_key("rate key", value, pattern=False)


def check_rate_keys(values: Iterable[object]) -> tuple[str, ...]:
    """A job's rate keys, checked (see :func:`check_rate_key`), without repeats, in order.

    Raises:
        RateLimitError: a key is invalid, ``values`` is a str (not a collection of keys), or
            there are more than 16 keys.
    """
    if isinstance(values, str | bytes):
        raise RateLimitError(f"rate_keys must be a collection of str keys, got {values!r}")
    keys = tuple(dict.fromkeys(check_rate_key(v) for v in values))
    if len(keys) > MAX_RATE_KEYS:
        raise RateLimitError(f"a job carries at most {MAX_RATE_KEYS} rate keys, got {len(keys)}")
    return keys


def rate_limit(key_pattern: object, max_starts: object, per: Duration) -> RateLimit:
    """A rule, checked: at most ``max_starts`` (>= 1) starts per ``per`` (a timedelta or
    seconds, > 0) for the keys ``key_pattern`` names.

    Raises:
        RateLimitError: the pattern is empty, too long, or has ``*`` elsewhere than at its
            end; ``max_starts`` is not an int >= 1; ``per`` is not a positive duration.
    """
    pattern = _check_key("key_pattern", key_pattern, pattern=True)
    try:
        starts = check_int("max_starts", max_starts, minimum=1)
        period = to_timedelta("per", per, allow_zero=False)
    except ConfigurationError as exc:
        raise RateLimitError(str(exc)) from None
    if period < timedelta(microseconds=1):
        raise RateLimitError(f"per must be at least a microsecond, got {per!r}")
    return RateLimit(key_pattern=pattern, max_starts=starts, period=period)


def rule_params(rule: RateLimit) -> dict[str, object]:
    """The parameters of ``rate_limit_set`` for ``rule``."""
    return {"key_pattern": rule.key_pattern, "max_starts": rule.max_starts, "period": rule.period}


async def write_rate_limits(conn: AsyncConnection[Any], rules: Iterable[RateLimit]) -> None:
    """Writes the rules a registry declares (``JobRegistry.add_rate_limit``), at runner start;
    each replaces its pattern's rule."""
    for rule in rules:
        await conn.execute(query("rate_limit_set"), rule_params(rule))
