"""spawned(), assert_spawned() and refute_spawned(): read in the test's transaction, payloads
decoded with the job's declared type, failures that say what was spawned."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from sqlxmq_py import ConfigurationError, JobRegistry, PayloadError, job
from sqlxmq_py.testing import SpawnedJob, assert_spawned, drain, refute_spawned, spawned

from .jobs import Email, publish, send


async def test_uncommitted_spawns_are_seen_with_typed_payloads(
    sqlxmq_aconn: psycopg.AsyncConnection[Any], sqlxmq_dsn: str
) -> None:
    job_id = await (
        send.builder()
        .set_json(Email("ada@example.com", "welcome"))
        .set_channel_args("customer-1")
        .set_job_key("welcome:ada")
        .set_priority(5)
    ).spawn(sqlxmq_aconn)

    found = await assert_spawned(sqlxmq_aconn, send, payload=Email("ada@example.com", "welcome"))

    assert isinstance(found, SpawnedJob)
    assert found.payload == Email("ada@example.com", "welcome")  # an Email, not a dict
    assert found.payload.to == "ada@example.com"
    assert (found.id, found.name, found.state, found.attempts, found.max_attempts) == (
        job_id,
        send.name,
        "ready",
        0,
        3,
    )
    assert (found.channel_name, found.channel_args, found.job_key, found.priority) == (
        "kit",
        "customer-1",
        "welcome:ada",
        5,
    )
    assert found.payload_json == '{"to":"ada@example.com","subject":"welcome"}'
    with psycopg.connect(sqlxmq_dsn, autocommit=True) as outside:
        assert spawned(outside, send) == []  # not committed: only the test's transaction sees it


async def test_each_filter_narrows_the_match(sqlxmq_aconn: psycopg.AsyncConnection[Any]) -> None:
    now = datetime.now(UTC)
    a = await send.builder().set_json(Email("a@example.com")).spawn(sqlxmq_aconn)
    b = await (
        send.builder()
        .set_json(Email("b@example.com"))
        .set_channel_name("other")
        .set_channel_args("x")
        .set_priority(3)
        .set_run_at(now + timedelta(hours=2))
    ).spawn(sqlxmq_aconn)
    c = await send.builder().set_json(Email("c@example.com")).set_job_key("k").spawn(sqlxmq_aconn)

    async def ids(**filters: Any) -> list[Any]:
        return [j.id for j in await spawned(sqlxmq_aconn, send, **filters)]

    assert await ids() == [a, b, c]  # in spawn order
    assert await ids(channel_name="other") == [b]
    assert await ids(channel_args="x") == [b]
    assert await ids(job_key="k") == [c]
    assert await ids(job_key=None) == [a, b]
    assert await ids(priority=3) == [b]
    assert await ids(state="scheduled") == [b]
    assert await ids(state=["ready", "scheduled"]) == [a, b, c]
    assert await ids(run_at_after=now + timedelta(hours=1)) == [b]
    assert await ids(run_at_before=now + timedelta(hours=1)) == [a, c]
    assert await ids(payload=Email("c@example.com")) == [c]
    assert await ids(where=lambda j: j.payload.to.startswith(("a", "c"))) == [a, c]
    assert await ids(channel_name="kit", payload=Email("b@example.com")) == []
    assert [j.id for j in await spawned(sqlxmq_aconn, send.name)] == [a, b, c]  # by name too


async def test_assert_spawned_says_what_was_spawned(
    sqlxmq_aconn: psycopg.AsyncConnection[Any],
) -> None:
    await send.builder().set_json(Email("a@example.com")).spawn(sqlxmq_aconn)
    await (
        send.builder()
        .set_json(Email("b@example.com"))
        .set_channel_name("other")
        .spawn(sqlxmq_aconn)
    )

    with pytest.raises(AssertionError) as none:
        await assert_spawned(sqlxmq_aconn, send, payload=Email("z@example.com"))
    message = str(none.value)
    assert message.startswith(f"expected exactly one job {send.name!r} matching payload=")
    assert "found 0" in message
    assert f"jobs {send.name!r} spawned (2):" in message
    assert "Email(to='a@example.com', subject='hello')" in message
    assert "channel_name='other'" in message

    with pytest.raises(AssertionError, match="found 2") as two:
        await assert_spawned(sqlxmq_aconn, send)
    assert "matching:" in str(two.value)

    with pytest.raises(AssertionError) as other:
        await assert_spawned(sqlxmq_aconn, publish)
    assert f"no job {publish.name!r} is queued" in str(other.value)
    assert f"queued jobs by name: {send.name!r} (2)" in str(other.value)


async def test_refute_spawned(sqlxmq_aconn: psycopg.AsyncConnection[Any]) -> None:
    await refute_spawned(sqlxmq_aconn, send)
    await send.builder().set_json(Email("a@example.com")).spawn(sqlxmq_aconn)
    await refute_spawned(sqlxmq_aconn, send, channel_name="other")
    with pytest.raises(AssertionError, match=r"expected no job .* found 1"):
        await refute_spawned(sqlxmq_aconn, send, payload=Email("a@example.com"))


def test_sync_connections_get_values(sqlxmq_conn: psycopg.Connection[Any]) -> None:
    job_id = send.builder().set_json(Email("a@example.com")).spawn(sqlxmq_conn)
    assert [j.id for j in spawned(sqlxmq_conn, send)] == [job_id]
    assert assert_spawned(sqlxmq_conn, send, state="ready").payload == Email("a@example.com")
    refute_spawned(sqlxmq_conn, publish)
    with pytest.raises(AssertionError, match="found 1"):
        refute_spawned(sqlxmq_conn, send)


async def test_a_payload_that_does_not_validate_breaks_no_listing(
    sqlxmq_aconn: psycopg.AsyncConnection[Any],
) -> None:
    bad = await send.builder().set_raw_json('{"to": 7}').spawn(sqlxmq_aconn)
    good = await send.builder().set_json(Email("a@example.com")).spawn(sqlxmq_aconn)

    listed = await spawned(sqlxmq_aconn, send)
    assert [j.id for j in listed] == [bad, good]
    with pytest.raises(PayloadError, match=r"Expected `str`, got `int` - at `\$.to`"):
        _ = listed[0].payload  # as the job itself would receive it
    assert (await assert_spawned(sqlxmq_aconn, send, payload=Email("a@example.com"))).id == good
    with pytest.raises(AssertionError, match="invalid: payload of job"):
        await assert_spawned(sqlxmq_aconn, send, payload=Email("z@example.com"))


async def test_untyped_jobs_aliases_and_kept_jobs(
    sqlxmq_aconn: psycopg.AsyncConnection[Any],
) -> None:
    @job(name="kit.old_name", channel_name="kit")
    async def old(current_job: Any) -> None: ...

    @job(name="kit.new_name", aliases=["kit.old_name"], channel_name="kit")
    async def new(current_job: Any) -> None: ...

    queued_under_old = await old.builder().set_json({"n": 1}).set_retain_for(60).spawn(sqlxmq_aconn)
    found = await assert_spawned(sqlxmq_aconn, new)  # its alias counts
    assert (found.id, found.name, found.payload) == (queued_under_old, "kit.old_name", {"n": 1})

    await drain(sqlxmq_aconn, JobRegistry([new]))
    await refute_spawned(sqlxmq_aconn, new)  # queued states only, by default
    kept = await assert_spawned(sqlxmq_aconn, new, state="completed")
    assert (kept.id, kept.attempts, kept.run_at) == (queued_under_old, 1, None)


async def test_bad_filters_are_refused(sqlxmq_aconn: psycopg.AsyncConnection[Any]) -> None:
    with pytest.raises(ConfigurationError, match="state must be one of"):
        await spawned(sqlxmq_aconn, send, state="done")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="unknown filters"):
        await spawned(sqlxmq_aconn, send, chanel_name="kit")  # type: ignore[call-overload]
    with pytest.raises(ConfigurationError, match="expected a job"):
        await spawned(sqlxmq_aconn, 42)  # type: ignore[call-overload]
