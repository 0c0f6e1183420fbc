"""The testing kit's perform() (a job run in the test, without a database) and its plugin
module."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest

from sqlxmq_py import (
    BlockingCurrentJob,
    Checkpoint,
    ConfigurationError,
    CurrentJob,
    JobRegistry,
    JobTimeoutError,
    PayloadError,
    job,
)
from sqlxmq_py.testing import perform, perform_sync

from ..testing.jobs import Email, Greeting, greet, lazy, send, slow, threaded


async def test_payloads_are_encoded_and_decoded_as_in_production() -> None:
    with pytest.raises(PayloadError, match="expected Email, got dict"):
        await perform(send, {"to": "ada@example.com"})  # type: ignore[misc]
    with pytest.raises(PayloadError, match=r"Expected `str`, got `int` - at `\$.to`"):
        await perform(send, raw_json='{"to": 5}')
    failed = await perform(send, raw_json='{"to": 5}', raise_errors=False)
    assert failed.outcome == "retrying"  # attempt 1 of 3
    assert isinstance(failed.error, PayloadError)
    with pytest.raises(PayloadError):
        _ = failed.result  # re-raises what the job raised


async def test_a_failure_on_the_last_attempt_would_fail_the_job() -> None:
    last = await perform(send, Email("x@example.invalid"), attempt=3, raise_errors=False)
    assert last.outcome == "failed"
    assert isinstance(last.error, ValueError)
    earlier = await perform(send, Email("x@example.invalid"), attempt=2, raise_errors=False)
    assert earlier.outcome == "retrying"


async def test_a_thread_job_runs_in_a_thread_and_its_requests_are_recorded() -> None:
    done = await perform(threaded, Email("t@example.com"))
    assert done.result != threading.current_thread().name
    assert done.result.startswith("sqlxmq-perform")
    assert isinstance(done.current_job, BlockingCurrentJob)
    assert done.completion is not None
    assert (done.completion.result, done.completion.in_transaction) == ("completed by hand", False)
    (checkpoint,) = done.checkpoints
    assert checkpoint.json() == {"to": "next@example.com"}
    assert (checkpoint.extra_retries, checkpoint.in_transaction) == (0, False)
    assert done.keep_alives == (timedelta(seconds=60),)
    assert done.outcome == "completed"


async def test_a_checkpoint_that_grants_retries_keeps_a_last_attempt_alive() -> None:
    @job(channel_name="kit", retries=0)
    async def progress(current_job: CurrentJob) -> None:
        await current_job.checkpoint(Checkpoint().set_json({"done": 10}).set_extra_retries(1))
        raise RuntimeError("half way")

    failed = await perform(progress, {"done": 0}, raise_errors=False)
    assert failed.outcome == "retrying"
    assert [c.json() for c in failed.checkpoints] == [{"done": 10}]


async def test_context_values_by_name_by_class_or_from_a_registry() -> None:
    hello = Greeting("Hello")
    by_name = await perform(greet, {"name": "Ada"}, context={"greeting": hello})
    by_class = await perform(greet, {"name": "Ada"}, context=[hello])
    registry = JobRegistry([greet]).set_context(Greeting("Hi"))
    from_registry = await perform(greet, {"name": "Ada"}, context=registry)
    assert (by_name.result, by_class.result, from_registry.result) == (
        "Hello, Ada",
        "Hello, Ada",
        "Hi, Ada",
    )
    with pytest.raises(ConfigurationError, match="missing \\['greeting'\\]"):
        await perform(greet, {"name": "Ada"}, context={})
    with pytest.raises(ConfigurationError, match="Greeting"):
        await perform(greet, {"name": "Ada"})


async def test_without_a_pool_the_job_is_told_how_to_get_one() -> None:
    with pytest.raises(ConfigurationError, match="pass pool=aconn"):
        await perform(send, Email("ada@example.com"))


async def test_auto_complete_false_and_timeouts_settle_as_in_a_runner() -> None:
    assert (await perform(lazy)).outcome == "abandoned"
    timed_out = await perform(slow, raise_errors=False)
    assert isinstance(timed_out.error, JobTimeoutError)
    assert timed_out.outcome == "failed"


async def test_options_set_the_running_job() -> None:
    @job(channel_name="kit")
    async def echo(current_job: CurrentJob) -> dict[str, Any]:
        return {
            "channel": [current_job.channel_name, current_job.channel_args],
            "key": current_job.job_key,
            "headers": current_job.headers,
            "bytes": current_job.raw_bytes(),
            "attempt": [current_job.attempt, current_job.max_attempts],
        }

    done = await perform(
        echo,
        {"a": 1},
        channel_name="c",
        channel_args="args",
        job_key="key",
        headers={"h": "v"},
        raw_bytes=b"\x00\x01",
        attempt=2,
        max_attempts=7,
    )
    assert done.result == {
        "channel": ["c", "args"],
        "key": "key",
        "headers": {"h": "v"},
        "bytes": b"\x00\x01",
        "attempt": [2, 7],
    }
    with pytest.raises(ConfigurationError, match="unknown options"):
        await perform(echo, retry=1)  # type: ignore[call-overload]


def test_perform_sync_runs_a_job_from_a_sync_test() -> None:
    done = perform_sync(threaded, Email("t@example.com"))
    assert done.completion is not None
    assert done.outcome == "completed"


async def test_perform_sync_refuses_to_block_a_running_loop() -> None:
    with pytest.raises(RuntimeError, match="await perform"):
        perform_sync(threaded, Email("t@example.com"))


def test_the_plugin_module_defines_no_hooks_and_no_autouse_fixtures() -> None:
    from sqlxmq_py.testing import plugin

    public: dict[str, Any] = {n: getattr(plugin, n) for n in dir(plugin) if not n.startswith("_")}
    assert not [name for name in public if name.startswith("pytest_")]
    fixtures = {n for n in public if n.startswith("sqlxmq_")}
    assert fixtures == {
        "sqlxmq_aconn",
        "sqlxmq_apool",
        "sqlxmq_conn",
        "sqlxmq_dsn",
        "sqlxmq_server_dsn",
        "sqlxmq_setup_database",
        "sqlxmq_template_database",
    }
    for name in fixtures:
        marker = getattr(public[name], "_fixture_function_marker", None)
        assert marker is not None, name
        assert not marker.autouse, name
