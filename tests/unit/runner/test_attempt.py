"""How an attempt's outcome is settled and logged, from what the database answered: pure rules."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from sqlxmq_py.current_job import LeasedJob
from sqlxmq_py.runner._attempt import (
    COMPLETED,
    WARN_UNKNOWN_EVERY,
    UnknownNames,
    failure,
    hand_back,
    leased_job,
    lost,
    lost_if_gone,
    park_reason,
    parking,
)


def a_job(max_attempts: int = 3) -> LeasedJob:
    return LeasedJob(
        id=uuid.uuid4(),
        token=uuid.uuid4(),
        name="send",
        attempt=1,
        max_attempts=max_attempts,
        channel_name="",
        channel_args="",
        lease=timedelta(seconds=30),
        retry_backoff=timedelta(seconds=1),
        payload_json=None,
        payload_bytes=None,
    )


def test_a_lease_row_becomes_a_job_with_every_column_in_its_place() -> None:
    job_id, token = uuid.uuid4(), uuid.uuid4()
    row = (
        job_id, token, 2, 5, "mail", "eu", timedelta(seconds=9), "send", '{"a": 1}', None,
        timedelta(seconds=3), "key-1", timedelta(days=1), '{"h": 1}', 8,
    )  # fmt: skip
    job = leased_job(row)
    assert (job.id, job.token, job.attempt, job.max_attempts) == (job_id, token, 2, 5)
    assert (job.channel_name, job.channel_args, job.name) == ("mail", "eu", "send")
    assert (job.lease, job.retry_backoff) == (timedelta(seconds=9), timedelta(seconds=3))
    assert (job.payload_json, job.payload_bytes, job.job_key) == ('{"a": 1}', None, "key-1")
    assert (job.retain_for, job.headers, job.payload_size) == (timedelta(days=1), '{"h": 1}', 8)


def test_a_lease_row_of_the_wrong_shape_is_refused() -> None:
    with pytest.raises(ValueError, match="unpack"):
        leased_job((uuid.uuid4(), uuid.uuid4()))


def test_a_completed_attempt_logs_at_debug_with_its_duration() -> None:
    assert (COMPLETED.outcome, COMPLETED.event, COMPLETED.level) == (
        "completed",
        "job_completed",
        "debug",
    )
    assert COMPLETED.timed
    assert COMPLETED.error is None


@pytest.mark.parametrize(("state", "outcome"), [("r", "retrying"), ("s", "retrying")])
def test_a_failure_with_a_retry_to_come_warns_and_tells_the_error_handler(
    state: str, outcome: str
) -> None:
    exc = ValueError("boom")
    settled = failure(a_job(), state, exc, "ValueError: boom\n\ntraceback")
    assert (settled.outcome, settled.event, settled.level) == (outcome, "job_failed", "warning")
    assert settled.keys == {
        "final": False,
        "error": "ValueError: boom",
        "traceback": "ValueError: boom\n\ntraceback",
    }
    assert settled.error is exc


def test_a_final_failure_is_an_error_naming_the_attempts_allowed() -> None:
    settled = failure(a_job(max_attempts=4), "f", KeyError("k"), "text")
    assert (settled.outcome, settled.level) == ("failed", "error")
    assert settled.keys["final"] is True
    assert settled.keys["max_attempts"] == 4


def test_a_failure_of_a_cancelled_job_is_a_cancellation() -> None:
    settled = failure(a_job(), "c", RuntimeError("x"), "text")
    assert (settled.outcome, settled.event) == ("cancelled", "job_cancelled")
    assert settled.keys == {"error": "RuntimeError: x"}


def test_a_failure_whose_lease_was_gone_is_a_lost_lease_still_told_to_the_handler() -> None:
    exc = RuntimeError("x")
    settled = failure(a_job(), None, exc, "text")
    assert (settled.outcome, settled.event) == ("lease_lost", "lease_lost")
    assert settled.keys == {"action": "fail", "error": "RuntimeError: x"}
    assert settled.error is exc


def test_an_unknown_state_from_the_database_counts_as_a_retry() -> None:
    assert failure(a_job(), "?", RuntimeError("x"), "t").outcome == "retrying"


def test_an_error_that_cannot_be_printed_still_settles() -> None:
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    settled = failure(a_job(), "r", Unprintable(), "t")
    assert settled.outcome == "retrying"
    assert "Unprintable" in str(settled.keys["error"])


@pytest.mark.parametrize(
    ("state", "outcome", "event"),
    [
        ("interrupted", "interrupted", "job_interrupted"),
        ("released", "interrupted", "job_interrupted"),  # what mq_release said before 0009
        ("cancelled", "cancelled", "job_cancelled"),
        (None, "lease_lost", "lease_lost"),
    ],
)
def test_a_hand_back_at_stop(state: str | None, outcome: str, event: str) -> None:
    settled = hand_back(state)
    assert (settled.outcome, settled.event) == (outcome, event)
    assert settled.error is None


def test_an_interrupted_attempt_says_why_at_info() -> None:
    settled = hand_back("interrupted")
    assert settled.level == "info"
    assert settled.keys["why"] == "runner stopping"


@pytest.mark.parametrize(
    ("state", "outcome", "event"),
    [
        ("parked", "parked", None),
        ("cancelled", "cancelled", "job_cancelled"),
        (None, "lease_lost", "lease_lost"),
    ],
)
def test_parking_a_job_of_an_unknown_name(
    state: str | None, outcome: str, event: str | None
) -> None:
    settled = parking(state)
    assert (settled.outcome, settled.event) == (outcome, event)


def test_only_a_lost_write_marks_the_lease_lost() -> None:
    job = a_job()
    lost_if_gone(job, hand_back("interrupted"))
    assert not job.lease_lost
    lost_if_gone(job, lost("complete"))
    assert job.lease_lost


def test_the_park_reason_names_the_job_and_at_most_ten_known_names() -> None:
    reason = park_reason("mystery", frozenset(f"job{i:02}" for i in range(12)))
    assert "'mystery'" in reason
    assert "12 other jobs" in reason
    assert "'job09'" in reason
    assert "'job10'" not in reason
    assert reason.endswith("…)")


def test_an_unknown_name_is_warned_of_once_in_a_while() -> None:
    unknown = UnknownNames()
    assert unknown.warn_now("a", 0.0)
    assert not unknown.warn_now("a", 1.0)
    assert unknown.warn_now("b", 1.0)  # each name on its own
    assert not unknown.warn_now("a", WARN_UNKNOWN_EVERY - 0.001)
    assert unknown.warn_now("a", WARN_UNKNOWN_EVERY)
