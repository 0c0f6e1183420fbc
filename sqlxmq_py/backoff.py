"""Retry timing: exponential backoff with jitter and a cap (pure functions)."""

from __future__ import annotations

import random
from datetime import timedelta

__all__ = ["MAX_RETRY_DELAY", "retry_delay"]

MAX_RETRY_DELAY = timedelta(hours=1)
"""No retry waits longer than this, however many attempts came before."""

_JITTER = 0.1


def retry_delay(
    attempt: int,
    backoff: timedelta,
    *,
    cap: timedelta = MAX_RETRY_DELAY,
    rng: random.Random | None = None,
) -> timedelta:
    """How long to wait after failed attempt number ``attempt`` (1-based) before the next one.

    ``backoff * 2 ** (attempt - 1)``, stretched by up to 10 % of random jitter so that jobs that
    failed together do not retry in lockstep, and never more than ``cap``. With the default 1 s
    backoff, jobs that fail at once run at about 0, 1, 3, 7 and 15 s.
    """
    base = backoff.total_seconds() * 2.0 ** min(max(attempt - 1, 0), 64)
    jitter = (rng or random).random() * _JITTER
    return timedelta(seconds=min(base * (1.0 + jitter), cap.total_seconds()))
