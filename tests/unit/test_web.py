"""Pure parts of the web app: sessions and CSRF tokens, redirects, origin checks, charts, and the
dashboard's own SQL."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.requests import Request

from sqlxmq_py.admin import StatsBucket
from sqlxmq_py.sql import query
from sqlxmq_py.web.charts import MAX_BARS, bar_chart, bin_buckets
from sqlxmq_py.web.security import (
    SESSION_LIFETIME_S,
    Sessions,
    bearer_matches,
    cross_origin_reason,
    safe_next,
)


def test_sessions_are_signed_expire_and_end_when_the_token_changes() -> None:
    sessions = Sessions("secret")
    cookie = sessions.new(now=1_000)
    nonce = sessions.nonce(cookie, now=1_001)
    assert nonce is not None
    assert sessions.nonce(cookie, now=1_000 + SESSION_LIFETIME_S + 1) is None
    assert Sessions("other").nonce(cookie, now=1_001) is None
    version, expires, nonce_part, signature = cookie.split(".")
    for forged in (
        f"{version}.{int(expires) + 10_000}.{nonce_part}.{signature}",
        f"{version}.{expires}.{'0' * 32}.{signature}",
        f"{version}.{expires}.{nonce_part}.{'0' * 64}",
        "v1.abc.def.0",
        "",
        "garbage",
    ):
        assert sessions.nonce(forged, now=1_001) is None, forged
    csrf = sessions.csrf(nonce)
    assert sessions.csrf_matches(nonce, csrf)
    assert not sessions.csrf_matches(nonce, None)
    assert not sessions.csrf_matches(nonce, "")
    assert not sessions.csrf_matches(sessions.nonce(sessions.new()) or "", csrf)
    assert sessions.token_matches("secret")
    assert not sessions.token_matches("secreT")


def test_bearer_tokens() -> None:
    assert bearer_matches("t0k", "Bearer t0k")
    assert bearer_matches("t0k", "bearer  t0k ")
    for header in (None, "", "t0k", "Basic t0k", "Bearer t0K", "Bearer", "Bearer t0k2"):
        assert not bearer_matches("t0k", header), header
    assert not bearer_matches("t0k", "Bearer \udcff")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "/base/"),
        ("/base/jobs?state=failed", "/base/jobs?state=failed"),
        ("/base/", "/base/"),
        ("/other/", "/base/"),
        ("//evil.example/base/", "/base/"),
        ("http://evil.example/base/", "/base/"),
        ("/base\\..\\", "/base/"),
        ("base/jobs", "/base/"),
    ],
)
def test_safe_next_stays_local(value: str | None, expected: str) -> None:
    assert safe_next("/base", value) == expected


def _request(headers: dict[str, str]) -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    return Request({"type": "http", "method": "POST", "headers": raw, "path": "/"})


def test_cross_origin_reason() -> None:
    host = {"Host": "127.0.0.1:8040"}
    assert cross_origin_reason(_request(host)) is None
    assert cross_origin_reason(_request({**host, "Origin": "http://127.0.0.1:8040"})) is None
    assert cross_origin_reason(_request({**host, "Sec-Fetch-Site": "same-origin"})) is None
    for extra in (
        {"Origin": "http://127.0.0.1:8041"},
        {"Origin": "http://localhost:8040"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ):
        assert cross_origin_reason(_request({**host, **extra})) is not None, extra


def test_bins_cover_the_window_and_keep_every_count() -> None:
    since = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    buckets = [
        StatsBucket(minute=since + timedelta(minutes=m), completed=m, retried=1, failed=m % 2)
        for m in range(0, 360, 7)
    ]
    bins = bin_buckets(buckets, since, 360)
    assert len(bins) == MAX_BARS
    assert bins[0].start == since
    assert bins[1].start - bins[0].start == timedelta(minutes=3)
    assert sum(b.completed for b in bins) == sum(b.completed for b in buckets)
    assert sum(b.failed for b in bins) == sum(b.failed for b in buckets)
    hour = bin_buckets(buckets, since, 60)
    assert len(hour) == 60
    assert sum(b.retried for b in hour) == 9  # the buckets before 13:00


@given(st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=200))
def test_bars_fit_the_chart(counts: list[int]) -> None:
    since = datetime(2030, 1, 1, tzinfo=UTC)
    bins = bin_buckets(
        [
            StatsBucket(minute=since + timedelta(minutes=i), completed=c, retried=0, failed=0)
            for i, c in enumerate(counts)
        ],
        since,
        len(counts),
    )
    svg = bar_chart(bins, ["completed", "retried", "failed"], label="<label>")
    assert svg.startswith("<svg")
    assert svg.endswith("</svg>")
    assert "<label>" not in svg
    bars = r'class="bar [^"]+" x="[^"]+" y="([^"]+)" width="[^"]+" height="([^"]+)"'
    for y, height in re.findall(bars, svg):
        assert float(y) >= 10 - 0.01
        assert float(y) + float(height) <= 180 - 22 + 0.02  # two values rounded to 0.01
    assert svg.count('class="bar ') == sum(1 for b in bins if b.completed)


def test_dashboard_queries_bind_every_value() -> None:
    for name in (
        "web_job_details",
        "web_job_worker",
        "web_job_chain",
        "web_job_parents",
        "web_job_children",
    ):
        sql = query(name).decode()
        assert "%(id)s" in sql, name
        assert "{" not in sql, name  # nothing is formatted in
        assert "--" not in sql, name  # comments stay out of the statements
