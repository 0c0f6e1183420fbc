"""Pooler detection, which failures the runner retries, and the pacing of result waits (no
database)."""

from __future__ import annotations

import psycopg
import pytest

from sqlxmq_py._pooler import through_pooler
from sqlxmq_py.results import POLL_FIRST, POLL_MAX, next_poll_delay
from sqlxmq_py.runner._connection import is_transient


def test_through_pooler_by_port_or_by_pid() -> None:
    assert not through_pooler(5432, "5432")
    assert through_pooler(6432, "5432")
    assert not through_pooler(5432, "5432", 4242, 4242)
    assert through_pooler(5432, "5432", -1566004219, 4242)  # PgBouncer's own key
    assert through_pooler(6432, "5432", 4242, 4242)
    assert not through_pooler(5432, "5432", None, 4242)
    assert not through_pooler("not a port", "5432")


@pytest.mark.parametrize(
    ("sqlstate", "transient"),
    [
        ("08006", True),  # connection failure: a new connection may work
        ("08001", True),  # could not connect
        ("57P01", True),  # admin shutdown
        ("40001", True),  # serialization failure
        ("25006", True),  # read-only: a failover
        # protocol violation: what the client sent (or a pooler's rules, PgBouncer's on
        # prepared statements) would break the protocol again on every retry
        ("08P01", False),
        ("42601", False),  # syntax error
        ("28P01", False),  # bad password
    ],
)
def test_which_failures_the_runner_retries(sqlstate: str, transient: bool) -> None:
    assert is_transient(psycopg.errors.lookup(sqlstate)("from the test")) is transient


def test_the_status_is_reread_after_50_ms_doubling_to_1_s() -> None:
    delays = [next_poll_delay(None)]
    for _ in range(8):
        delays.append(next_poll_delay(delays[-1]))
    assert delays == [0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0, 1.0]
    assert (POLL_FIRST, POLL_MAX) == (0.05, 1.0)
