"""What the HTTP API takes and answers about rate limits per key: the rules, the keys in use
(each with its starts in the current window and when it next allows a start), and setting or
removing a rule by its pattern."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from ..admin import RateKeyWindow
from ..rate_limit import MAX_RATE_KEY_BYTES, RateLimit
from .fields import Count, Integer, Model, PositiveSeconds, Timestamp

__all__ = [
    "PatternPath",
    "RateKeyResponse",
    "RateLimitRemoved",
    "RateLimitRequest",
    "RateLimits",
    "RateRuleResponse",
]

_INT_MAX = 2**31 - 1
PATTERN = "^[^\\u0000*]*\\*?$"
"""No NUL, and ``*`` only as the last character."""


class PatternPath(Model):
    """The rule's pattern named in the path."""

    pattern: Annotated[str, Field(min_length=1, max_length=MAX_RATE_KEY_BYTES, pattern=PATTERN)] = (
        Field(
            description="A key ('openai': one budget for every job carrying it) or a prefix ending "
            "in '*' ('customer:*': a budget per key under it); percent-encoded (':' may stay, '/' "
            f"as %2F). At most {MAX_RATE_KEY_BYTES} bytes of UTF-8."
        )
    )


class RateLimitRequest(Model):
    """A rule's budget: at most max_starts starts in any window of period_s seconds."""

    max_starts: Annotated[int, Field(ge=1, le=_INT_MAX), Integer]
    period_s: PositiveSeconds = Field(description="The window's length, in seconds.")


class RateRuleResponse(Model):
    """A rate rule."""

    key_pattern: str
    max_starts: Annotated[int, Field(ge=1)]
    period_s: float
    per_key: bool = Field(description="A prefix rule: each key under it has its own budget.")

    @classmethod
    def of(cls, rule: RateLimit) -> RateRuleResponse:
        """The answer for a ``RateLimit``."""
        return cls.model_construct(
            key_pattern=rule.key_pattern,
            max_starts=rule.max_starts,
            period_s=rule.period.total_seconds(),
            per_key=rule.per_key,
        )


class RateKeyResponse(Model):
    """A limited key with starts in its current window."""

    rate_key: str
    max_starts: Annotated[int, Field(ge=1)] = Field(description="Its rule's budget.")
    period_s: float = Field(description="Its rule's window, in seconds.")
    starts_in_window: Count = Field(description="Starts in the window ending now.")
    next_start_at: Timestamp | None = Field(
        description="When it allows a start again; null: it allows one now."
    )

    @classmethod
    def of(cls, window: RateKeyWindow) -> RateKeyResponse:
        """The answer for an admin ``RateKeyWindow``."""
        return cls.model_construct(
            rate_key=window.rate_key,
            max_starts=window.max_starts,
            period_s=window.period.total_seconds(),
            starts_in_window=window.starts_in_window,
            next_start_at=window.next_start_at,
        )


class RateLimits(Model):
    """The rules, by pattern, and the keys in use, the fullest first."""

    rules: list[RateRuleResponse]
    keys: list[RateKeyResponse] = Field(
        description="Limited keys with starts in their current window, the fullest first."
    )
    keys_limit: Count = Field(description="At most this many keys are listed.")


class RateLimitRemoved(Model):
    """A removed rule."""

    key_pattern: str
    removed: bool = Field(description="Always true (an unknown pattern answers 404).")
