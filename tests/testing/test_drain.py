"""drain(): the due jobs run in process, through the runner's attempt code and statements, in
the test's own transaction (or on committed data, with a pool)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from sqlxmq_py import ConfigurationError, JobRegistry, PayloadError, job
from sqlxmq_py.admin import job_status
from sqlxmq_py.current_job import JobInfo
from sqlxmq_py.hooks import JobOutcome, RunnerHooks
from sqlxmq_py.testing import assert_spawned, drain, refute_spawned, spawned

from .jobs import (
    Email,
    Greeting,
    Sent,
    boom,
    duplicate,
    exactly_once,
    greet,
    lazy,
    publish,
    respawn,
    send,
    slow,
    step,
    threaded,
)

REGISTRY = JobRegistry([send, publish, boom, exactly_once, threaded, respawn, lazy, slow])


async def effects(conn: psycopg.AsyncConnection[Any]) -> list[str]:
    cur = await conn.execute("SELECT note FROM kit_effects ORDER BY note")
    return [note for (note,) in await cur.fetchall()]


async def test_jobs_spawned_in_the_tests_transaction_run_and_the_rollback_removes_all(
    sqlxmq_aconn: psycopg.AsyncConnection[Any], sqlxmq_dsn: str
) -> None:
    job_id = await send.builder().set_json(Email("ada@example.com")).spawn(sqlxmq_aconn)
    with psycopg.connect(sqlxmq_dsn, autocommit=True) as outside:  # nothing committed
        assert outside.execute("SELECT count(*) FROM mq_jobs").fetchone() == (0,)

    ran = await drain(sqlxmq_aconn, REGISTRY)

    assert [(r.id, r.name, r.attempt, r.outcome, r.error) for r in ran] == [
        (job_id, send.name, 1, "completed", None)
    ]
    assert ran[0].result == Sent("<hello@ada@example.com>")  # decoded as the declared type
    assert await effects(sqlxmq_aconn) == ["sent to ada@example.com"]  # through current_job.pool
    await refute_spawned(sqlxmq_aconn, send)  # completed: gone from the queue
    with psycopg.connect(sqlxmq_dsn, autocommit=True) as outside:
        assert outside.execute("SELECT count(*) FROM kit_effects").fetchone() == (0,)
        assert outside.execute("SELECT count(*) FROM mq_jobs").fetchone() == (0,)

    await sqlxmq_aconn.rollback()
    assert await effects(sqlxmq_aconn) == []
    cur = await sqlxmq_aconn.execute("SELECT count(*) FROM mq_payloads")
    assert await cur.fetchone() == (0,)


async def test_nothing_due_runs_nothing(sqlxmq_aconn: psycopg.AsyncConnection[Any]) -> None:
    await send.builder().set_json(Email("later@example.com")).set_delay(3600).spawn(sqlxmq_aconn)
    assert await drain(sqlxmq_aconn, REGISTRY) == []
    (waiting,) = await spawned(sqlxmq_aconn, send)
    assert waiting.state == "scheduled"
    ran = await drain(sqlxmq_aconn, REGISTRY, with_scheduled=True)
    assert [r.outcome for r in ran] == ["completed"]


async def test_a_failing_job_is_recorded_and_retried_after_its_backoff(
    sqlxmq_aconn: psycopg.AsyncConnection[Any],
) -> None:
    job_id = await send.builder().set_json(Email("bob@example.invalid")).spawn(sqlxmq_aconn)

    (first,) = await drain(sqlxmq_aconn, REGISTRY)  # retries="wait": its backoff is 60 s
    assert (first.id, first.attempt, first.outcome) == (job_id, 1, "retrying")
    assert first.error is not None
    assert first.error.startswith("ValueError: undeliverable address bob@example.invalid")
    assert "Traceback" in first.error  # as a runner records it
    assert isinstance(first.exception, ValueError)
    assert first.retry_in is not None
    assert timedelta(seconds=60) <= first.retry_in <= timedelta(seconds=66)  # 10 % jitter
    waiting = await assert_spawned(sqlxmq_aconn, send, state="retrying")
    assert (waiting.attempts, waiting.last_error) == (1, first.error)

    rest = await drain(sqlxmq_aconn, REGISTRY, retries="now")  # until it fails for good
    assert [(r.attempt, r.outcome) for r in rest] == [(2, "retrying"), (3, "failed")]
    assert rest[-1].retry_in is None
    failed = await assert_spawned(sqlxmq_aconn, send, state="failed")
    assert failed.attempts == failed.max_attempts == 3  # retries=2
    assert failed.last_error is not None
    assert failed.last_error.startswith("ValueError")


async def test_a_payload_that_does_not_validate_fails_the_attempt_naming_the_field(
    sqlxmq_aconn: psycopg.AsyncConnection[Any],
) -> None:
    await send.builder().set_raw_json('{"to": 42}').spawn(sqlxmq_aconn)
    (ran,) = await drain(sqlxmq_aconn, REGISTRY)
    assert ran.outcome == "retrying"
    assert isinstance(ran.exception, PayloadError)
    assert ran.error is not None
    assert ran.error.startswith("PayloadError: payload of job")
    assert "Expected `str`, got `int` - at `$.to`" in ran.error.splitlines()[0]


async def test_an_unknown_job_name_is_parked_not_burned_and_runs_once_known(
    sqlxmq_aconn: psycopg.AsyncConnection[Any],
) -> None:
    @job(name="kit.renamed", channel_name="kit")
    async def renamed(current_job: Any) -> str:
        return "ran"

    job_id = await renamed.builder().spawn(sqlxmq_aconn)
    (parked,) = await drain(sqlxmq_aconn, REGISTRY)
    assert (parked.id, parked.outcome, parked.attempt) == (job_id, "parked", 1)
    assert parked.error is not None
    assert "knows the job name 'kit.renamed'" in parked.error
    status = await job_status(sqlxmq_aconn, job_id)
    assert status is not None
    assert (status.state, status.attempts) == ("waiting", 0)  # its attempt was not counted
    assert await drain(sqlxmq_aconn, REGISTRY) == []  # parked: not due for this registry

    (ran,) = await drain(sqlxmq_aconn, JobRegistry([renamed]))  # a registry that knows it
    assert (ran.outcome, ran.attempt, ran.result) == ("completed", 1, "ran")


async def test_a_continuation_released_by_its_parent_runs_in_the_same_drain(
    sqlxmq_aconn: psycopg.AsyncConnection[Any],
) -> None:
    parent = await send.builder().set_json(Email("ada@example.com")).spawn(sqlxmq_aconn)
    child = await publish.builder().set_after([parent]).spawn(sqlxmq_aconn)
    assert (await assert_spawned(sqlxmq_aconn, publish)).state == "waiting"

    ran = await drain(sqlxmq_aconn, REGISTRY)
    assert [(r.id, r.outcome) for r in ran] == [(parent, "completed"), (child, "completed")]
    assert ran[1].result == "published"
    assert await effects(sqlxmq_aconn) == ["published", "sent to ada@example.com"]


async def test_a_failed_parent_cancels_its_continuation(
    sqlxmq_aconn: psycopg.AsyncConnection[Any],
) -> None:
    parent = await boom.builder().spawn(sqlxmq_aconn)
    child = await publish.builder().set_after([parent]).spawn(sqlxmq_aconn)
    ran = await drain(sqlxmq_aconn, REGISTRY)
    assert [(r.id, r.outcome) for r in ran] == [(parent, "failed")]
    status = await job_status(sqlxmq_aconn, child)
    assert status is not None
    assert status.state == "cancelled"


async def test_completion_in_the_jobs_own_transaction_is_exactly_once(
    sqlxmq_aconn: psycopg.AsyncConnection[Any],
) -> None:
    done = await exactly_once.builder().set_json("commit").spawn(sqlxmq_aconn)
    raised = await exactly_once.builder().set_json("raise").spawn(sqlxmq_aconn)
    swallowed = await exactly_once.builder().set_json("swallow").spawn(sqlxmq_aconn)

    ran = {r.id: r for r in await drain(sqlxmq_aconn, REGISTRY)}

    assert (ran[done].outcome, ran[done].result) == ("completed", "returned")
    # its transaction rolled back with the completion: the attempt fails, the effect is gone
    assert ran[raised].outcome == "retrying"
    assert (ran[raised].error or "").startswith("RuntimeError: after completing")
    assert ran[swallowed].outcome == "retrying"
    assert (ran[swallowed].error or "").startswith("CompletionRolledBack")
    cur = await sqlxmq_aconn.execute("SELECT job_id FROM kit_effects")
    assert await cur.fetchall() == [(done,)]


async def test_thread_jobs_run_in_a_thread_with_their_blocking_twin(
    sqlxmq_aconn: psycopg.AsyncConnection[Any],
) -> None:
    job_id = await threaded.builder().set_json(Email("t@example.com")).spawn(sqlxmq_aconn)
    (ran,) = await drain(sqlxmq_aconn, REGISTRY)
    # complete(result=...) without a connection went through the drain's writer
    assert (ran.id, ran.outcome, ran.result) == (job_id, "completed", "completed by hand")


async def test_other_outcomes_as_a_runner_settles_them(
    sqlxmq_aconn: psycopg.AsyncConnection[Any],
) -> None:
    timed_out = await slow.builder().spawn(sqlxmq_aconn)
    returned = await lazy.builder().spawn(sqlxmq_aconn)
    ran = {r.id: r for r in await drain(sqlxmq_aconn, REGISTRY)}
    assert ran[timed_out].outcome == "failed"
    assert (ran[timed_out].error or "").startswith("JobTimeoutError")
    assert ran[returned].outcome == "abandoned"  # auto_complete=False, returned: runs again
    assert (await assert_spawned(sqlxmq_aconn, lazy)).state == "running"  # till its lease ends


async def test_raise_errors_raises_what_the_job_raised_once_recorded(
    sqlxmq_aconn: psycopg.AsyncConnection[Any],
) -> None:
    await boom.builder().spawn(sqlxmq_aconn)
    with pytest.raises(RuntimeError, match=r"^boom$"):
        await drain(sqlxmq_aconn, REGISTRY, raise_errors=True)
    assert (await assert_spawned(sqlxmq_aconn, boom)).state == "failed"


async def test_a_job_that_spawns_itself_forever_stops_at_the_limit(
    sqlxmq_aconn: psycopg.AsyncConnection[Any],
) -> None:
    await respawn.builder().spawn(sqlxmq_aconn)
    with pytest.raises(AssertionError, match="drain ran 5 attempts and jobs are still due"):
        await drain(sqlxmq_aconn, REGISTRY, limit=5)
    (left,) = await spawned(sqlxmq_aconn, respawn)
    assert (left.state, left.attempts) == ("ready", 0)  # handed back, not left leased


async def test_channel_names_limit_what_runs(sqlxmq_aconn: psycopg.AsyncConnection[Any]) -> None:
    here = await send.builder().set_json(Email("a@example.com")).spawn(sqlxmq_aconn)
    there = await (
        send.builder().set_channel_name("elsewhere").set_json(Email("b@example.com"))
    ).spawn(sqlxmq_aconn)
    assert [r.id for r in await drain(sqlxmq_aconn, REGISTRY, channel_names=["kit"])] == [here]
    assert [r.id for r in await drain(sqlxmq_aconn, REGISTRY)] == [there]


async def test_context_values_hooks_and_the_error_handler_are_the_registrys(
    sqlxmq_aconn: psycopg.AsyncConnection[Any],
) -> None:
    handled: list[tuple[str, BaseException]] = []
    finished: list[tuple[str, JobOutcome]] = []

    class Hooks(RunnerHooks):
        def job_finished(self, job: JobInfo, outcome: JobOutcome, duration_s: float | None) -> None:
            finished.append((job.name, outcome))

    registry = (
        JobRegistry([greet, boom])
        .set_context(Greeting("Hello"))
        .set_error_handler(lambda info, error: handled.append((info.name, error)))
    )
    await greet.builder().set_json({"name": "Ada"}).spawn(sqlxmq_aconn)
    await boom.builder().spawn(sqlxmq_aconn)
    ran = await drain(sqlxmq_aconn, registry, hooks=[Hooks()])
    assert sorted((r.name, r.outcome, r.result) for r in ran) == [
        (boom.name, "failed", None),
        (greet.name, "completed", "Hello, Ada"),
    ]
    assert sorted(finished) == [(boom.name, "failed"), (greet.name, "completed")]
    assert [(name, str(error)) for name, error in handled] == [(boom.name, "boom")]


async def test_a_job_that_could_never_run_is_refused_before_anything_runs(
    sqlxmq_aconn: psycopg.AsyncConnection[Any],
) -> None:
    await send.builder().set_json(Email("a@example.com")).spawn(sqlxmq_aconn)
    with pytest.raises(ConfigurationError, match="Greeting"):
        await drain(sqlxmq_aconn, JobRegistry([send, greet]))  # no Greeting in its context
    assert (await assert_spawned(sqlxmq_aconn, send)).state == "ready"


async def test_bad_arguments_are_refused(sqlxmq_aconn: psycopg.AsyncConnection[Any]) -> None:
    with pytest.raises(ConfigurationError, match="retries"):
        await drain(sqlxmq_aconn, REGISTRY, retries="soon")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="channel_names"):
        await drain(sqlxmq_aconn, REGISTRY, channel_names="kit")
    with pytest.raises(ConfigurationError, match="limit"):
        await drain(sqlxmq_aconn, REGISTRY, limit=0)


async def test_on_a_pool_it_works_on_committed_data_like_a_runner(
    sqlxmq_apool: AsyncConnectionPool[Any], sqlxmq_dsn: str
) -> None:
    async with sqlxmq_apool.connection() as conn:
        parent = await send.builder().set_json(Email("ada@example.com")).spawn(conn)
        await publish.builder().set_after([parent]).spawn(conn)
        await send.builder().set_json(Email("x@example.invalid")).spawn(conn)
    ran = await drain(sqlxmq_apool, REGISTRY)
    assert sorted(r.outcome for r in ran) == ["completed", "completed", "retrying"]
    with psycopg.connect(sqlxmq_dsn, autocommit=True) as outside:  # committed
        notes = outside.execute("SELECT note FROM kit_effects ORDER BY note").fetchall()
        assert notes == [("published",), ("sent to ada@example.com",)]
        (retrying,) = spawned(outside, send)
        assert (retrying.state, retrying.attempts) == ("retrying", 1)


async def test_drain_refuses_a_sync_connection(sqlxmq_conn: psycopg.Connection[Any]) -> None:
    with pytest.raises(ConfigurationError, match="run_pending"):
        await drain(sqlxmq_conn, REGISTRY)  # type: ignore[arg-type]


async def test_a_job_whose_sql_fails_leaves_the_tests_transaction_usable(
    sqlxmq_aconn: psycopg.AsyncConnection[Any],
) -> None:
    job_id = await duplicate.builder().spawn(sqlxmq_aconn)
    (ran,) = await drain(sqlxmq_aconn, JobRegistry([duplicate]))
    assert ran.outcome == "failed"
    assert (ran.error or "").startswith("UniqueViolation")
    # its savepoint was rolled back, its failure recorded, and the transaction goes on
    assert await effects(sqlxmq_aconn) == []
    failed = await assert_spawned(sqlxmq_aconn, duplicate, state="failed")
    assert failed.id == job_id


async def test_an_ordered_chain_runs_in_spawn_order(
    sqlxmq_aconn: psycopg.AsyncConnection[Any],
) -> None:
    for n in (3, 1, 2):
        await step.builder().set_json(n).spawn(sqlxmq_aconn)
    ran = await drain(sqlxmq_aconn, JobRegistry([step]))
    assert [r.result for r in ran] == [3, 1, 2]


async def test_on_an_autocommit_connection_each_job_commits_its_own_transaction(
    sqlxmq_dsn: str,
) -> None:
    async with await psycopg.AsyncConnection.connect(sqlxmq_dsn, autocommit=True) as conn:
        await send.builder().set_json(Email("ada@example.com")).spawn(conn)
        (ran,) = await drain(conn, REGISTRY)
    assert ran.outcome == "completed"
    with psycopg.connect(sqlxmq_dsn, autocommit=True) as outside:
        assert outside.execute("SELECT note FROM kit_effects").fetchall() == [
            ("sent to ada@example.com",)
        ]
        assert outside.execute("SELECT count(*) FROM mq_jobs").fetchone() == (0,)
