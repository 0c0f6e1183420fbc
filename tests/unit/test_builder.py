"""JobBuilder, Checkpoint and @job validate options when they are set (no database)."""

from __future__ import annotations

import math
import uuid
from datetime import timedelta

import pytest

from sqlxmq_py import (
    Checkpoint,
    ConfigurationError,
    CurrentJob,
    DuplicateJobError,
    JobBuilder,
    JobRegistry,
    PayloadError,
    job,
)
from sqlxmq_py._insert import insert_params


@job
async def plain(current_job: CurrentJob) -> None:
    pass


def test_bare_decorator_names_job_after_function() -> None:
    # the function's module and qualified name: two `plain` jobs in two modules differ
    assert plain.name == "tests.unit.test_builder.plain"
    assert plain.name == f"{plain.fn.__module__}.{plain.fn.__qualname__}"
    assert plain.options.aliases == ()
    assert plain.is_async
    assert plain.options.retries == 4
    assert plain.options.backoff == timedelta(seconds=1)


def test_decorator_options_become_builder_defaults() -> None:
    @job(name="x", channel_name="c", retries=2, backoff=0.5, ordered=True, lease=10, priority=3)
    def sync_job(current_job: object) -> None:
        pass

    assert not sync_job.is_async
    params = insert_params([sync_job.builder().to_write()])
    assert params["names"] == ["x"]
    assert params["channel_names"] == ["c"]
    assert params["max_attempts"] == [3]
    assert params["retry_backoffs"] == [timedelta(seconds=0.5)]
    assert params["ordered"] == [True]
    assert params["leases"] == [timedelta(seconds=10)]
    assert params["priorities"] == [3]


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"retries": -1}, "retries"),
        ({"retries": 1.5}, "retries"),
        ({"retries": True}, "retries"),
        ({"backoff": -1}, "backoff"),
        ({"backoff": "1s"}, "backoff"),
        ({"backoff": math.nan}, "backoff"),
        ({"lease": 0}, "lease"),
        ({"ordered": "yes"}, "ordered"),
        ({"auto_complete": 1}, "auto_complete"),
        ({"channel_name": "a\x00b"}, "channel_name"),
        ({"channel_name": 7}, "channel_name"),
        ({"name": ""}, "name"),
        ({"priority": 2**40}, "priority"),
    ],
)
def test_bad_decorator_options_raise_naming_the_option(
    options: dict[str, object], named: str
) -> None:
    with pytest.raises(ConfigurationError, match=named):
        job(**options)  # type: ignore[call-overload]


def test_job_function_must_take_the_current_job() -> None:
    with pytest.raises(ConfigurationError, match="first positional parameter"):

        @job
        async def no_params() -> None:
            pass


def test_context_parameters_need_annotations() -> None:
    with pytest.raises(ConfigurationError, match="needs a type annotation"):

        @job
        async def untyped(current_job: CurrentJob, client) -> None:  # type: ignore[no-untyped-def]
            pass


def test_functions_of_the_same_name_in_different_scopes_do_not_collide() -> None:
    @job
    async def plain(current_job: CurrentJob) -> None:
        pass

    outer = globals()["plain"]
    assert plain.fn.__name__ == outer.fn.__name__ == "plain"
    assert plain.name != outer.name
    assert plain.name.endswith(".<locals>.plain")
    registry = JobRegistry([outer, plain])
    assert registry.get(outer.name) is outer
    assert registry.get(plain.name) is plain


def test_registry_rejects_duplicate_names() -> None:
    @job(name="twin")
    async def one(current_job: CurrentJob) -> None:
        pass

    @job(name="twin")
    async def other(current_job: CurrentJob) -> None:
        pass

    with pytest.raises(DuplicateJobError, match="twin"):
        JobRegistry([one, other])


def test_registry_rejects_a_name_equal_to_another_jobs_alias() -> None:
    @job(name="new_name", aliases=["old_name"])
    async def renamed(current_job: CurrentJob) -> None:
        pass

    @job(name="old_name")
    async def other(current_job: CurrentJob) -> None:
        pass

    with pytest.raises(DuplicateJobError, match="old_name"):
        JobRegistry([renamed, other])
    with pytest.raises(DuplicateJobError, match="old_name"):
        JobRegistry([other, renamed])


def test_registry_finds_a_job_by_its_aliases() -> None:
    @job(aliases=["old_name", "older_name"])
    async def renamed(current_job: CurrentJob) -> None:
        pass

    registry = JobRegistry([renamed])
    assert renamed.options.aliases == ("old_name", "older_name")
    assert registry.get(renamed.name) is renamed
    assert registry.get("old_name") is renamed
    assert registry.get("older_name") is renamed
    assert registry.get("renamed") is None  # the short name is no alias
    assert registry.names == {renamed.name, "old_name", "older_name"}


def test_registry_rejects_non_jobs() -> None:
    with pytest.raises(ConfigurationError, match="@job-decorated"):
        JobRegistry([lambda job: None])  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("call", "named"),
    [
        (lambda b: b.set_delay(-1), "delay"),
        (lambda b: b.set_retries(-2), "retries"),
        (lambda b: b.set_retry_backoff(timedelta(seconds=-1)), "retry_backoff"),
        (lambda b: b.set_commit_interval(0), "commit_interval"),
        (lambda b: b.set_channel_args(None), "channel_args"),
        (lambda b: b.set_channel_name("\x00"), "channel_name"),
        (lambda b: b.set_priority("high"), "priority"),
        (lambda b: b.set_lease(-5), "lease"),
        (lambda b: b.set_ordered(1), "ordered"),
        (lambda b: b.set_id("not-a-uuid"), "id"),
    ],
)
def test_bad_builder_options_raise_naming_the_option(call: object, named: str) -> None:
    builder = plain.builder()
    with pytest.raises(ConfigurationError, match=named):
        call(builder)  # type: ignore[operator]


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, {"a": [1, math.nan]}])
def test_json_payload_rejects_nan_and_infinity(value: object) -> None:
    with pytest.raises(PayloadError, match="NaN or Infinity"):
        plain.builder().set_json(value)


def test_json_payload_rejects_unserialisable_values() -> None:
    with pytest.raises(PayloadError, match="not JSON-serialisable"):
        plain.builder().set_json({"when": object()})


def test_json_payload_rejects_lone_surrogates() -> None:
    with pytest.raises(PayloadError, match="not valid Unicode"):
        plain.builder().set_json("\ud800")


@pytest.mark.parametrize("text", ["{", "NaN", "[Infinity]", "", "'single'", '"\\ud800"'])
def test_raw_json_must_be_valid_json(text: str) -> None:
    with pytest.raises(PayloadError):
        plain.builder().set_raw_json(text)


def test_raw_bytes_must_be_bytes() -> None:
    with pytest.raises(PayloadError, match="bytes-like"):
        plain.builder().set_raw_bytes("text")  # type: ignore[arg-type]


def test_builder_setters_chain_and_mutate() -> None:
    builder = JobBuilder("n")
    assert builder.set_channel_name("c").set_channel_args("a") is builder


def test_each_spawn_gets_a_new_time_ordered_id() -> None:
    builder = plain.builder()
    first: list[uuid.UUID] = insert_params([builder.to_write()])["ids"]  # type: ignore[assignment]
    second: list[uuid.UUID] = insert_params([builder.to_write()])["ids"]  # type: ignore[assignment]
    assert first[0] != second[0]
    assert first[0].version == 7
    assert first[0] <= second[0] or first[0].int >> 80 == second[0].int >> 80


def test_explicit_id_is_kept() -> None:
    job_id = uuid.uuid4()
    params = insert_params([plain.builder().set_id(job_id).to_write()])
    assert params["ids"] == [job_id]


def test_checkpoint_validates_and_only_replaces_what_is_set() -> None:
    cp = Checkpoint()
    params = cp.params(uuid.uuid4(), uuid.uuid4())
    assert params["set_json"] is False
    assert params["set_bytes"] is False
    with pytest.raises(ConfigurationError, match="extra_retries"):
        cp.set_extra_retries(-1)
    with pytest.raises(PayloadError):
        cp.set_json(math.nan)
    params = cp.set_json({"step": 2}).set_raw_bytes(None).params(uuid.uuid4(), uuid.uuid4())
    assert params["payload_json"] == '{"step":2}'
    assert params["set_bytes"] is True
    assert params["payload_bytes"] is None
