"""``sqlxmq rate-limit`` and ``rate-limits``, run as the real console program."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import psycopg

from sqlxmq_py.admin import list_rate_limits
from sqlxmq_py.rate_limit import RateLimit

from .conftest import Cli


def test_set_list_and_remove_rate_limits(cli: Cli, db: psycopg.Connection[Any]) -> None:
    result = cli("rate-limits")
    assert (result.returncode, result.stdout) == (0, "No rate limits.\n")
    result = cli("rate-limit", "openai", "10", "1s")
    assert (result.returncode, result.stdout, result.stderr) == (
        0,
        "limited openai to 10 starts per 1.0s\n",
        "",
    )
    assert cli("rate-limit", "customer:*", "100", "1m").returncode == 0
    assert list_rate_limits(db) == [
        RateLimit(key_pattern="customer:*", max_starts=100, period=timedelta(minutes=1)),
        RateLimit(key_pattern="openai", max_starts=10, period=timedelta(seconds=1)),
    ]
    result = cli("rate-limits")
    assert result.stdout.splitlines() == [
        "KEY         STARTS    PER  BUDGET",
        "customer:*     100  1m00s  per key",
        "openai          10   1.0s  shared",
    ]
    result = cli("--json", "rate-limits")
    assert json.loads(result.stdout)["rate_limits"][1] == {
        "key_pattern": "openai",
        "max_starts": 10,
        "period": 1.0,
    }
    result = cli("rate-limit", "openai", "none")
    assert (result.returncode, result.stdout) == (0, "removed the rate limit of openai\n")
    assert [r.key_pattern for r in list_rate_limits(db)] == ["customer:*"]


def test_bad_rate_limits_are_usage_errors(cli: Cli, db: psycopg.Connection[Any]) -> None:
    for args, message in [
        (("rate-limit", "k", "0", "1s"), "expected a whole number >= 1"),
        (("rate-limit", "k", "3"), "needs PER"),
        (("rate-limit", "k", "none", "1s"), "takes no PER"),
        (("rate-limit", "a*b", "3", "1s"), "'*' only as the last character"),
        (("rate-limit", "k", "3", "0s"), "per must be more than zero"),
    ]:
        result = cli(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr, (args, result.stderr)
    assert list_rate_limits(db) == []
