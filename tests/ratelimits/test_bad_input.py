"""Invalid rules and keys are refused with RateLimitError (a ConfigurationError) that says what
was wrong, before anything reaches the database; and the database refuses them too."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg
import pytest

from sqlxmq_py import ConfigurationError, JobRegistry, RateLimitError, job
from sqlxmq_py.admin import remove_rate_limit, set_rate_limit

from .jobs import limited


@pytest.mark.parametrize(
    ("pattern", "max_starts", "per", "message"),
    [
        ("k", 0, 1, "max_starts must be between 1"),
        ("k", -3, 1, "max_starts must be between 1"),
        ("k", 1.5, 1, "max_starts must be an int"),
        ("k", True, 1, "max_starts must be an int"),
        ("k", 1, 0, "per must be more than zero"),
        ("k", 1, timedelta(0), "per must be more than zero"),
        ("k", 1, -1, "per must be more than zero"),
        ("k", 1, timedelta(seconds=-1), "per must be"),
        ("k", 1, "1s", "per must be a timedelta"),
        ("", 1, 1, "key_pattern must not be empty"),
        ("a*b", 1, 1, "'*' only as the last character"),
        ("**", 1, 1, "'*' only as the last character"),
        ("x" * 201, 1, 1, "at most 200 bytes"),
        ("a\x00", 1, 1, "NUL"),
        (None, 1, 1, "key_pattern must be a str"),
    ],
)
def test_a_bad_rule_is_refused(
    conn: psycopg.Connection[Any], pattern: Any, max_starts: Any, per: Any, message: str
) -> None:
    with pytest.raises(RateLimitError, match=message):
        set_rate_limit(conn, pattern, max_starts, per=per)
    with pytest.raises(RateLimitError, match=message):
        JobRegistry([]).add_rate_limit(pattern, max_starts, per=per)
    assert conn.execute("SELECT count(*) FROM mq_rate_limits").fetchone() == (0,)


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("", "rate key must not be empty"),
        ("customer:*", "may hold '\\*' in a rule"),
        ("é" * 101, "at most 200 bytes"),
        (7, "rate key must be a str"),
    ],
)
def test_a_bad_key_is_refused(key: Any, message: str) -> None:
    with pytest.raises(RateLimitError, match=message):
        limited.builder().add_rate_key(key)
    with pytest.raises(RateLimitError, match=message):
        limited.builder().set_rate_keys([key])
    with pytest.raises(RateLimitError, match=message):
        job(name="bad", rate_keys=[key])


def test_keys_are_a_collection_without_repeats_and_of_bounded_number() -> None:
    with pytest.raises(RateLimitError, match="collection of str keys"):
        job(name="bad", rate_keys="openai")
    with pytest.raises(RateLimitError, match="at most 16 rate keys"):
        limited.builder().set_rate_keys([f"k{i}" for i in range(17)])
    builder = limited.builder().add_rate_key("global").add_rate_key("b")
    assert builder.rate_keys == ("global", "b")
    assert limited.builder().set_rate_keys([]).rate_keys == ()
    assert issubclass(RateLimitError, ConfigurationError)


def test_remove_checks_its_pattern(conn: psycopg.Connection[Any]) -> None:
    with pytest.raises(RateLimitError, match="must not be empty"):
        remove_rate_limit(conn, "")


def test_the_database_refuses_what_bypasses_the_checks(conn: psycopg.Connection[Any]) -> None:
    for values in (("k", 0, "1 s"), ("k", 1, "0 s"), ("k", 1, "-1 s")):
        with pytest.raises(psycopg.errors.CheckViolation), conn.transaction():
            conn.execute("INSERT INTO mq_rate_limits VALUES (%s, %s, %s::interval)", values)
