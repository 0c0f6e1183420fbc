"""When the runner's loops warn, stay quiet and say they recovered: pure state, no database."""

from __future__ import annotations

import pytest

from sqlxmq_py.runner._health import (
    READ_ONLY_EVENT,
    ConnectionHealth,
    FailureSpell,
    Hearing,
    backoff,
)
from sqlxmq_py.runner._keepalive import renew_interval, renew_retry_wait


def test_backoff_doubles_from_first_to_its_ceiling() -> None:
    assert [backoff(n, first=0.05, most=1.0) for n in range(1, 7)] == [
        0.05,
        0.1,
        0.2,
        0.4,
        0.8,
        1.0,
    ]


def test_backoff_survives_absurd_failure_counts() -> None:
    assert backoff(10**9, first=0.05, most=5.0) == 5.0
    assert backoff(0, first=0.05, most=5.0) == 0.05


def test_a_spell_is_reported_once_per_kind_and_once_when_it_ends() -> None:
    spell = FailureSpell()
    assert spell.succeeded() is False  # nothing to restore
    assert spell.failed("refused") is True
    assert spell.failed("refused") is False
    assert spell.failed("timeout") is True  # a new kind of failure is news
    assert spell.failures == 3
    assert spell.succeeded() is True
    assert spell.failures == 0
    assert spell.succeeded() is False


def test_a_connection_warns_once_per_spell_then_logs_retries_at_debug() -> None:
    health = ConnectionHealth()
    assert health.retrying(read_only=False, connected=False) == ("connection_lost", "warning")
    assert health.retrying(read_only=False, connected=True) == ("statement_retried", "debug")
    assert health.succeeded(writes=False) is True
    assert health.succeeded(writes=True) is False


def test_a_read_only_spell_ends_with_a_write_only() -> None:
    health = ConnectionHealth()
    assert health.retrying(read_only=True, connected=False) == (READ_ONLY_EVENT, "warning")
    # the reconnection fails for another reason meanwhile: still the same spell
    assert health.retrying(read_only=False, connected=False) == ("connection_lost", "debug")
    assert health.failing == READ_ONLY_EVENT
    assert health.succeeded(writes=False) is False  # a standby answers reads too
    assert health.retrying(read_only=True, connected=False)[1] == "debug"
    assert health.succeeded(writes=True) is True
    assert health.failing is None


def test_the_listener_check_reports_changes_only() -> None:
    hearing = Hearing()
    assert hearing.checked(True) is None
    assert hearing.checked(False) is True
    assert hearing.checked(False) is None
    assert hearing.checked(True) is False
    assert hearing.checked(True) is None


@pytest.mark.parametrize(
    ("leases", "expected"),
    [([], 10.0), ([3.0], 1.0), ([60.0, 0.3], 0.2), ([90.0], 10.0)],
)
def test_leases_are_renewed_every_third_of_the_shortest(
    leases: list[float], expected: float
) -> None:
    import uuid
    from datetime import timedelta

    held = [(uuid.uuid4(), uuid.uuid4(), timedelta(seconds=s)) for s in leases]
    assert renew_interval(held, timedelta(seconds=30)) == pytest.approx(expected)


def test_failed_renewals_back_off_to_five_seconds() -> None:
    waits = [renew_retry_wait(n) for n in range(1, 30)]
    assert waits[0] == pytest.approx(0.1)
    assert waits == sorted(waits)
    assert waits[-1] == 5.0
