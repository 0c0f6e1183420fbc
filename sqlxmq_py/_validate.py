"""Pure validation of user-supplied options: every failure names the option and what it accepts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TypeAlias

from .errors import ConfigurationError

__all__ = [
    "MAX_DURATION",
    "MAX_KEY_BYTES",
    "MAX_NAME_BYTES",
    "MAX_RUN_AT",
    "Duration",
    "check_bool",
    "check_int",
    "check_name",
    "check_run_at",
    "check_text",
    "to_timedelta",
]

Duration: TypeAlias = "timedelta | float | int"
"""A length of time: a ``timedelta``, or a number of seconds."""

_PG_INT_MAX = 2**31 - 1
MAX_DURATION = timedelta(days=36525)
"""The longest delay, lease or interval accepted: 100 years (longer ones overflow timestamps)."""

MAX_RUN_AT = datetime(9000, 1, 1, tzinfo=UTC)
"""Run times must be earlier than this (the schema's bound on ``attempt_at``)."""


def to_timedelta(option: str, value: object, *, allow_zero: bool = True) -> timedelta:
    """Converts ``value`` (a timedelta or seconds) to a timedelta, refusing negative lengths."""
    if isinstance(value, bool) or not isinstance(value, timedelta | int | float):
        raise ConfigurationError(
            f"{option} must be a timedelta or a number of seconds, got {value!r}"
        )
    delta = value if isinstance(value, timedelta) else _seconds(option, value)
    if delta < timedelta(0) or (not allow_zero and delta == timedelta(0)):
        bound = "zero or more" if allow_zero else "more than zero"
        raise ConfigurationError(f"{option} must be {bound}, got {value!r}")
    if delta > MAX_DURATION:
        raise ConfigurationError(f"{option} must be at most 100 years, got {value!r}")
    return delta


def check_run_at(run_at: object) -> datetime:
    """Checks a run time: a timezone-aware datetime (a naive one's meaning depends on the
    machine) before :data:`MAX_RUN_AT`."""
    if not isinstance(run_at, datetime):
        raise ConfigurationError(f"run_at must be a datetime, got {run_at!r}")
    if run_at.tzinfo is None or run_at.utcoffset() is None:
        raise ConfigurationError(
            f"run_at must be timezone-aware (e.g. datetime.now(timezone.utc)), got {run_at!r}"
        )
    if run_at >= MAX_RUN_AT:
        raise ConfigurationError(f"run_at must be before {MAX_RUN_AT.date()}, got {run_at!r}")
    return run_at


def check_bool(option: str, value: object) -> bool:
    """Checks that ``value`` is a bool (not merely truthy)."""
    if not isinstance(value, bool):
        raise ConfigurationError(f"{option} must be a bool, got {value!r}")
    return value


def _seconds(option: str, value: float) -> timedelta:
    try:
        return timedelta(seconds=value)
    except (OverflowError, ValueError) as exc:  # nan, inf, absurdly large
        raise ConfigurationError(
            f"{option} must be a finite number of seconds, got {value!r}"
        ) from exc


def check_int(option: str, value: object, *, minimum: int, maximum: int = _PG_INT_MAX) -> int:
    """Checks that ``value`` is an int (not a bool) within ``[minimum, maximum]``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError(f"{option} must be an int, got {value!r}")
    if not minimum <= value <= maximum:
        raise ConfigurationError(f"{option} must be between {minimum} and {maximum}, got {value}")
    return value


MAX_NAME_BYTES = 1000
"""The longest job name, channel name, channel args or schedule name, in UTF-8 bytes: they are
index keys, and a B-tree entry must fit in a third of a page."""

MAX_KEY_BYTES = 2000
"""The longest job key, in UTF-8 bytes (an index key of its own)."""


def check_name(option: str, value: object, max_bytes: int = MAX_NAME_BYTES) -> str:
    """Checks that ``value`` is a str PostgreSQL can store (see :func:`check_text`) and index:
    at most ``max_bytes`` bytes of UTF-8."""
    text = check_text(option, value)
    size = len(text) if text.isascii() else len(text.encode("utf-8"))
    if size > max_bytes:
        raise ConfigurationError(
            f"{option} must be at most {max_bytes} bytes of UTF-8 (it is an index key), got "
            f"{size} bytes: {text[:40]!r}…; hash a longer value (e.g. hashlib.sha256) and use "
            "the digest"
        )
    return text


def check_text(option: str, value: object) -> str:
    """Checks that ``value`` is a str PostgreSQL can store (valid Unicode, which excludes lone
    surrogates; no NUL character)."""
    if not isinstance(value, str):
        raise ConfigurationError(f"{option} must be a str, got {value!r}")
    if "\x00" in value:
        raise ConfigurationError(f"{option} must not contain NUL characters, got {value!r}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigurationError(
            f"{option} must be valid Unicode (no lone surrogates), got {value!r}"
        ) from None
    return value
