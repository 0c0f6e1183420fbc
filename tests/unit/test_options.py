"""Options of jobs, builders and runners that are refused before any database is reached."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from sqlxmq_py import (
    ConfigurationError,
    CurrentJob,
    JobRegistry,
    job,
)
from sqlxmq_py._validate import MAX_KEY_BYTES, MAX_NAME_BYTES

from ..helpers import incompressible


@job
async def noop(current_job: CurrentJob) -> None:
    pass


@job
async def keyed(current_job: CurrentJob) -> None:
    pass


@job(channel_name="children")
async def child(current_job: CurrentJob) -> None:
    pass


def test_runner_options_are_validated() -> None:
    @job
    async def anything(current_job: CurrentJob) -> None:
        pass

    options = JobRegistry([anything]).runner("postgresql://unused")
    with pytest.raises(ConfigurationError, match="min_concurrency"):
        options.set_concurrency(0, 5)
    with pytest.raises(ConfigurationError, match="must not exceed"):
        options.set_concurrency(10, 5)
    with pytest.raises(ConfigurationError, match="channel_names"):
        options.set_channel_names("emails")
    with pytest.raises(ConfigurationError, match="lease"):
        options.set_lease(0)
    with pytest.raises(ConfigurationError, match="pool"):
        JobRegistry([anything]).runner(42)  # type: ignore[arg-type]


def test_durable_leases_takes_a_bool() -> None:
    with pytest.raises(ConfigurationError, match="durable must be a bool, got 'yes'"):
        JobRegistry([]).runner(None).set_durable_leases("yes")  # type: ignore[arg-type]


def test_timeout_must_be_positive() -> None:
    with pytest.raises(ConfigurationError, match="timeout"):
        job(timeout=0)
    with pytest.raises(ConfigurationError, match="timeout"):
        job(timeout=-1)


def test_set_run_at_refuses_naive_datetimes() -> None:
    with pytest.raises(ConfigurationError, match="run_at") as raised:
        noop.builder().set_run_at(datetime(2030, 1, 1, 12, 0))
    assert "timezone-aware" in str(raised.value)
    with pytest.raises(ConfigurationError, match="run_at"):
        noop.builder().set_run_at("2030-01-01T12:00:00Z")  # type: ignore[arg-type]


def test_priority_is_validated() -> None:
    with pytest.raises(ConfigurationError, match="priority"):
        noop.builder().set_priority(2**31)
    with pytest.raises(ConfigurationError, match="priority"):
        noop.builder().set_priority(1.5)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="priority"):
        job(priority=True)  # type: ignore[call-overload]


def test_key_options_are_validated() -> None:
    with pytest.raises(ConfigurationError, match="mode"):
        keyed.builder().set_job_key("k", "overwrite")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="throttle"):
        keyed.builder().set_job_key(None, throttle=timedelta(seconds=1))
    with pytest.raises(ConfigurationError, match="throttle"):
        keyed.builder().set_job_key("k", throttle=0)
    with pytest.raises(ConfigurationError, match="job_key"):
        keyed.builder().set_job_key(7)  # type: ignore[arg-type]


def test_dead_letter_must_be_a_job_or_a_name() -> None:
    @job
    async def plain(current_job: CurrentJob) -> None:
        pass

    with pytest.raises(ConfigurationError, match="dead_letter"):
        plain.builder().set_dead_letter(42)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="dead_letter"):
        job(dead_letter=3.5)  # type: ignore[call-overload]


def test_set_after_takes_job_ids() -> None:
    with pytest.raises(ConfigurationError, match="after"):
        child.builder().set_after(["not-an-id"])  # type: ignore[list-item]
    with pytest.raises(ConfigurationError, match="run_after_failed_parents"):
        child.builder().set_after([], run_after_failed_parents="yes")  # type: ignore[arg-type]


def test_the_budget_is_validated() -> None:
    options = JobRegistry([]).runner("dbname=x")
    with pytest.raises(ConfigurationError, match="max_payload_bytes"):
        options.set_max_payload_bytes(0)
    assert options.set_max_payload_bytes(1).config().max_payload_bytes == 1


@pytest.mark.parametrize(
    ("option", "make"),
    [
        ("name", lambda text: job(name=text)(lambda current_job: None)),
        ("channel_name", lambda text: job(channel_name=text)(lambda current_job: None)),
        (
            "channel_args",
            lambda text: job(lambda current_job: None).builder().set_channel_args(text),
        ),
        (
            "channel_name",
            lambda text: job(lambda current_job: None).builder().set_channel_name(text),
        ),
    ],
)
def test_a_name_one_byte_too_long_is_refused_naming_the_limit(option: str, make: Any) -> None:
    make(incompressible(MAX_NAME_BYTES, 3))  # at the limit: fine
    with pytest.raises(ConfigurationError, match=rf"{option} must be at most 1000 bytes"):
        make(incompressible(MAX_NAME_BYTES + 1, 4))


def test_a_job_key_one_byte_too_long_is_refused_naming_the_limit() -> None:
    @job
    async def keyed(current_job: CurrentJob) -> None:
        pass

    keyed.builder().set_job_key(incompressible(MAX_KEY_BYTES, 5))
    with pytest.raises(ConfigurationError, match="job_key must be at most 2000 bytes"):
        keyed.builder().set_job_key(incompressible(MAX_KEY_BYTES + 1, 6))
