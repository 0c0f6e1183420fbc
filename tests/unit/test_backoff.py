"""The retry backoff schedule (no database)."""

from __future__ import annotations

from datetime import timedelta

from sqlxmq_py import retry_delay


def test_retry_delays_follow_sqlxmq_pattern() -> None:
    delays = [retry_delay(a, timedelta(seconds=1)).total_seconds() for a in range(1, 5)]
    for expected, got in zip([1, 2, 4, 8], delays, strict=True):
        assert expected <= got <= expected * 1.1
    # cumulative: attempts at about 0, 1, 3, 7, 15 s
    assert round(sum(delays[:4])) in (15, 16)
    assert retry_delay(60, timedelta(seconds=1)) == timedelta(hours=1)  # capped
