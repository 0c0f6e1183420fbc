"""The rate-limits page: rules and busiest keys escaped (a key with ``<b>``), the spent key's
"until", the nav entry, and the set/remove forms refused without login, CSRF token or same
origin, then accepted (and a bad number or pattern answered 400, nothing changed)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import psycopg

from sqlxmq_py.admin import list_rate_limits, set_rate_limit

from .test_pages import SAME_ORIGIN, login
from .test_rate_limits_api import fill_window

BOLD = '<b>bold</b>"&'


async def test_rules_and_busiest_keys_escaped(
    client: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    set_rate_limit(db, "customer:*", 2, per=timedelta(hours=1))
    set_rate_limit(db, BOLD, 9, per=timedelta(seconds=30))
    fill_window(db, "customer:" + BOLD, 2, "1 hour")
    page = (await client.get("/rate-limits")).text
    assert 'href="/rate-limits" aria-current="page">Rate limits</a>' in page
    assert "<b>" not in page
    assert "&lt;b&gt;bold&lt;/b&gt;&#34;&amp;" in page
    assert 'data-pattern="customer:*"' in page
    assert 'data-key="customer:&lt;b&gt;bold&lt;/b&gt;&#34;&amp;" class="paused"' in page
    assert "spent</span> until " in page
    assert "/actions/rate-limit-set" not in page  # no forms before logging in
    assert "Log in</a> to set or remove rules" in page


async def test_set_and_remove_a_rule_with_login_and_csrf(
    client: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    form = {"pattern": "tenant:*", "max_starts": "5", "period_s": "1.5", "next": "/rate-limits"}
    anonymous = await client.post("/actions/rate-limit-set", data=form, headers=SAME_ORIGIN)
    assert anonymous.status_code == 403
    csrf = await login(client)
    for data, headers in [
        (form, SAME_ORIGIN),
        ({**form, "csrf": "0" * 64}, SAME_ORIGIN),
        ({**form, "csrf": csrf}, {"Origin": "http://evil.example"}),
    ]:
        for action in ("rate-limit-set", "rate-limit-remove"):
            refused = await client.post(f"/actions/{action}", data=data, headers=headers)
            assert refused.status_code == 403, (action, headers)
    assert list_rate_limits(db) == []
    done = await client.post(
        "/actions/rate-limit-set", data={**form, "csrf": csrf}, headers=SAME_ORIGIN
    )
    assert (done.status_code, done.headers["location"]) == (303, "/rate-limits")
    ((rule),) = list_rate_limits(db)
    assert (rule.key_pattern, rule.max_starts, rule.period) == (
        "tenant:*",
        5,
        timedelta(seconds=1.5),
    )
    page = (await client.get("/rate-limits")).text
    assert "Rule &#39;tenant:*&#39;: 5 starts per 1.5 s." in page
    assert 'action="/actions/rate-limit-remove"' in page
    for bad in (
        {"max_starts": "0"},
        {"max_starts": "x"},
        {"period_s": "0"},
        {"period_s": "nan"},
        {"period_s": "1e309"},
        {"max_starts": "\u0663"},  # an Arabic-Indic 3: int() takes it, the form does not
        {"max_starts": "2147483648"},
        {"pattern": "a*b"},
        {"pattern": ""},
    ):
        refused = await client.post(
            "/actions/rate-limit-set", data={**form, "csrf": csrf, **bad}, headers=SAME_ORIGIN
        )
        assert refused.status_code == 400, bad
    assert [r.max_starts for r in list_rate_limits(db)] == [5]
    removed = await client.post(
        "/actions/rate-limit-remove",
        data={"pattern": "tenant:*", "csrf": csrf, "next": "/rate-limits"},
        headers=SAME_ORIGIN,
    )
    assert removed.status_code == 303
    assert list_rate_limits(db) == []
    again = await client.post(
        "/actions/rate-limit-remove",
        data={"pattern": "tenant:*", "csrf": csrf},
        headers=SAME_ORIGIN,
    )
    assert again.status_code == 404
