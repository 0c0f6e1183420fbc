"""The rate-limit operations of the HTTP API: rules with ':' and '*' (and '/', '%', '<b>') in
the path set, listed and removed; the busiest keys with their starts in the window and when a
spent key allows a start again; the refusals (no token, bad pattern, unknown rule)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import quote

import httpx
import psycopg

from sqlxmq_py.admin import busiest_rate_keys, list_rate_limits, set_rate_limit

from .conftest import AUTH

BOLD = "<b>bold</b>"


def rule_path(pattern: str) -> str:
    return "/api/rate-limits/" + quote(pattern, safe=":*")


def fill_window(db: psycopg.Connection[Any], key: str, starts: int, period: str) -> None:
    """``starts`` starts of ``key``, one a second back from now (as leases record them)."""
    db.execute(
        "INSERT INTO mq_rate_windows (rate_key, starts, idle_at) "
        "SELECT %s, array_agg(now() - n * interval '1 second' ORDER BY n DESC), "
        "now() + %s::interval FROM generate_series(1, %s) AS n",
        (key, period, starts),
    )


async def test_set_list_and_remove_rules_through_encoded_paths(
    client: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    for pattern, starts, period in (
        ("customer:*", 5, 60),
        ("openai", 100, 0.5),
        ("a/b%c?d#" + BOLD, 1, 3600),
    ):
        response = await client.put(
            rule_path(pattern), json={"max_starts": starts, "period_s": period}, headers=AUTH
        )
        assert response.status_code == 200, response.text
        assert response.json() == {
            "key_pattern": pattern,
            "max_starts": starts,
            "period_s": period,
            "per_key": pattern.endswith("*"),
        }
    listed = (await client.get("/api/rate-limits")).json()
    assert [r["key_pattern"] for r in listed["rules"]] == sorted(
        ["customer:*", "openai", "a/b%c?d#" + BOLD]
    )
    assert (listed["keys"], listed["keys_limit"]) == ([], 100)
    # replacing a rule
    await client.put(rule_path("openai"), json={"max_starts": 7, "period_s": 2}, headers=AUTH)
    rules = {r.key_pattern: r for r in list_rate_limits(db)}
    assert (rules["openai"].max_starts, rules["openai"].period) == (7, timedelta(seconds=2))
    removed = await client.delete(rule_path("a/b%c?d#" + BOLD), headers=AUTH)
    assert removed.json() == {"key_pattern": "a/b%c?d#" + BOLD, "removed": True}
    again = await client.delete(rule_path("a/b%c?d#" + BOLD), headers=AUTH)
    assert (again.status_code, again.json()["error"], again.json()["field"]) == (
        404,
        "not_found",
        "pattern",
    )
    assert sorted(r.key_pattern for r in list_rate_limits(db)) == ["customer:*", "openai"]


async def test_refusals_name_the_field(
    client: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    body = {"max_starts": 1, "period_s": 1}
    assert (await client.put(rule_path("x"), json=body)).status_code == 401
    assert (await client.delete(rule_path("x"))).status_code == 401
    for pattern, field in (("a*b", "pattern"), ("é" * 101, "pattern"), ("x" * 201, "pattern")):
        response = await client.put(rule_path(pattern), json=body, headers=AUTH)
        assert (response.status_code, response.json()["field"]) == (400, field), pattern
    for bad, field in (
        ({"max_starts": 0, "period_s": 1}, "max_starts"),
        ({"max_starts": 1, "period_s": 0}, "period_s"),
        ({"max_starts": 1}, "period_s"),
        ({"max_starts": "1", "period_s": 1}, "max_starts"),
    ):
        response = await client.put(rule_path("x"), json=bad, headers=AUTH)
        assert (response.status_code, response.json()["field"]) == (400, field), bad
    assert list_rate_limits(db) == []


async def test_the_busiest_keys_with_when_a_spent_key_allows_a_start(
    client: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    set_rate_limit(db, "customer:*", 3, per=timedelta(hours=1))
    set_rate_limit(db, "openai", 10, per=timedelta(hours=1))
    fill_window(db, "customer:" + BOLD, 3, "1 hour")  # spent
    fill_window(db, "openai", 2, "1 hour")
    fill_window(db, "unruled", 5, "1 hour")  # no rule: not limited, not listed
    keys = (await client.get("/api/rate-limits")).json()["keys"]
    assert [(k["rate_key"], k["starts_in_window"], k["max_starts"]) for k in keys] == [
        ("customer:" + BOLD, 3, 3),
        ("openai", 2, 10),
    ]
    assert keys[1]["next_start_at"] is None
    (spent, _) = busiest_rate_keys(db)
    # the oldest of the three starts (3 s ago) leaves the window an hour after it
    oldest = db.execute(
        "SELECT starts[1] FROM mq_rate_windows WHERE rate_key = %s", ("customer:" + BOLD,)
    ).fetchone()
    assert oldest is not None
    assert spent.next_start_at == oldest[0] + timedelta(hours=1)
    assert keys[0]["next_start_at"] == spent.next_start_at.isoformat()
    assert busiest_rate_keys(db, 1) == [spent]


async def test_a_pattern_holding_a_newline_reaches_the_operation(
    client: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    """Found by the negative fuzz: Starlette's ``path`` parameter stops at a newline, so a PUT
    of such a pattern found no route (an undocumented 404). It reaches the operation now, which
    answers with one of its documented statuses, and a removal of such a rule finds it."""
    body = {"max_starts": 1, "period_s": 1}
    for pattern in ("\u00dc\n*", "a\nb", "\r\n"):
        response = await client.put(rule_path(pattern), json=body, headers=AUTH)
        assert response.status_code in (200, 400), (pattern, response.text)
        if response.status_code == 400:
            assert response.json()["field"] == "pattern"
        else:
            assert response.json()["key_pattern"] == pattern
            removed = await client.delete(rule_path(pattern), headers=AUTH)
            assert removed.json() == {"key_pattern": pattern, "removed": True}
    step = await client.post(
        "/api/workflows/00000000-0000-0000-0000-000000000000/steps/" + quote("a\nb") + "/retry",
        headers=AUTH,
    )
    assert step.status_code == 404
    assert step.json()["field"] == "id"
    assert list_rate_limits(db) == []
