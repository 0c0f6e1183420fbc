"""What the public API infers: checked by ``mypy --strict`` in CI (``assert_type`` fails the
type check if an inferred type changes). Never executed."""

from __future__ import annotations

import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypedDict, assert_type

import psycopg
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from sqlxmq_py import (
    BlockingCurrentJob,
    CurrentJob,
    JobBuilder,
    JobRegistry,
    JobRunnerHandle,
    JobRunnerOptions,
    JobState,
    NamedJob,
    exists,
    job,
    spawn_many,
)
from sqlxmq_py.admin import (
    JobFilter,
    JobStatus,
    count_matching,
    delete_matching,
    job_status,
    list_jobs,
    retry_matching,
    run_now,
)
from sqlxmq_py.job_to_write import JobToWrite
from sqlxmq_py.spawn import spawn_payloads


@job
async def bare(current_job: CurrentJob) -> None: ...


@job(channel_name="emails", retries=2)
def threaded(current_job: BlockingCurrentJob) -> int:
    return 1


async_job: NamedJob[..., Coroutine[Any, Any, None]] = bare
thread_job: NamedJob[..., int] = threaded
assert_type(bare.builder(), JobBuilder)


def calling(current: CurrentJob, blocking: BlockingCurrentJob) -> None:
    # calling a NamedJob calls the function, with its own signature
    coro: Coroutine[Any, Any, None] = bare(current)  # (pyright infers types.CoroutineType)
    coro.close()
    assert_type(threaded(blocking), int)
    _ = bare(blocking)  # type: ignore[arg-type]  # the wrong kind of job handle is refused


assert_type(bare.builder().set_json({"a": 1}).set_delay(5), JobBuilder)


def sync_side(conn: psycopg.Connection[Any], pool: ConnectionPool[Any]) -> None:
    assert_type(bare.builder().spawn(conn), uuid.UUID)
    assert_type(bare.builder().spawn(pool), uuid.UUID)
    assert_type(spawn_many(conn, [bare.builder()]), list[uuid.UUID])
    assert_type(exists(conn, uuid.uuid4()), bool)
    assert_type(job_status(conn, uuid.uuid4()), JobStatus | None)
    failed = JobFilter(states=["failed"], error="timeout")
    assert_type(count_matching(conn, failed, action="retry"), int)
    assert_type(retry_matching(pool, failed, batch_size=500), int)
    assert_type(run_now(conn, [uuid.uuid4()]), int)


async def async_side(aconn: psycopg.AsyncConnection[Any], apool: AsyncConnectionPool[Any]) -> None:
    assert_type(await bare.builder().spawn(aconn), uuid.UUID)
    assert_type(await bare.builder().spawn(apool), uuid.UUID)
    assert_type(await exists(apool, uuid.uuid4()), bool)
    assert_type(await job_status(aconn, uuid.uuid4()), JobStatus | None)
    assert_type(await delete_matching(apool, JobFilter(all=True), release_chains=True), int)
    options = JobRegistry([bare, threaded]).runner(apool).set_concurrency(1, 2)
    assert_type(options, JobRunnerOptions)
    assert_type(await options.run(), JobRunnerHandle)


# --- typed payloads and results (issue 10.1) ---


@dataclass
class Email:
    to: str
    subject: str


class Tags(TypedDict):
    label: str
    weight: int


@job
async def send(current_job: CurrentJob[Email]) -> dict[str, int]:
    assert_type(current_job.payload, Email)  # no cast needed
    return {"sent": 1}


@job(retries=1)
def tag(current_job: BlockingCurrentJob[Tags]) -> None:
    assert_type(current_job.payload, Tags)


def typed_spawn(conn: psycopg.Connection[Any]) -> None:
    assert_type(send.builder(), JobBuilder[Email])
    send.builder().set_json(Email(to="a@example.com", subject="hi")).spawn(conn)
    send.builder().set_json({"to": "a@example.com", "subject": "hi"})  # type: ignore[arg-type]
    send.builder().set_json(Email(to="a@example.com"))  # type: ignore[call-arg]
    tag.builder().set_json({"label": "x", "weight": 1})
    tag.builder().set_json({"label": "x", "weihgt": 1})  # type: ignore[typeddict-item]
    tag.builder().set_json({"label": "x"})  # type: ignore[typeddict-item]
    assert_type(send.wait_for_result(conn, uuid.uuid4()), dict[str, int])
    assert_type(tag.wait_for_result(conn, uuid.uuid4()), None)
    # an untyped job keeps plain JSON
    assert_type(bare.builder(), JobBuilder[Any])
    bare.builder().set_json([1, "two", {"three": 3.0}])


async def typed_results(apool: AsyncConnectionPool[Any]) -> None:
    assert_type(await send.wait_for_result(apool, uuid.uuid4(), 10), dict[str, int])


def job_states(conn: psycopg.Connection[Any]) -> None:
    """A job's state is a ``JobState`` member, equal to its name; lists take either."""
    status = job_status(conn, uuid.uuid4())
    if status is not None:
        assert_type(status.state, JobState)
        assert_type(status.state.codes, tuple[str, ...])
        finished: bool = status.state == "completed" or status.state is JobState.CANCELLED
        del finished
    list_jobs(conn, states=[JobState.READY, "scheduled"])
    list_jobs(conn, states=["done"])  # type: ignore[list-item]  # not a state


async def bulk_payloads(conn: psycopg.Connection[Any], aconn: psycopg.AsyncConnection[Any]) -> None:
    """``spawn_payloads`` takes payloads of the job's declared type and returns the ids."""
    emails = [Email(to="a@example.com", subject="hi")]
    assert_type(spawn_payloads(conn, send, emails), list[uuid.UUID])
    assert_type(await spawn_payloads(aconn, send, emails, channel_args="g"), list[uuid.UUID])
    spawn_payloads(conn, bare, [1, "two", None])  # an untyped job takes any JSON
    spawn_payloads(conn, send, [{"to": "a@example.com"}])  # type: ignore[misc]  # not Emails
    assert_type(send.builder().to_write(), JobToWrite)


@job(rate_keys=["openai"])
async def rated(current_job: CurrentJob) -> None: ...


async def rate_limits(conn: psycopg.Connection[Any], aconn: psycopg.AsyncConnection[Any]) -> None:
    """Rate rules take a pattern, a count and a period; a builder adds keys; the status names
    the spent ones."""
    from datetime import timedelta

    from sqlxmq_py.admin import RateWait, list_rate_limits, remove_rate_limit, set_rate_limit
    from sqlxmq_py.rate_limit import RateLimit

    assert_type(set_rate_limit(conn, "customer:*", 10, per=timedelta(minutes=1)), None)
    await set_rate_limit(aconn, "openai", 50, per=1.0)
    assert_type(list_rate_limits(conn), list[RateLimit])
    assert_type(await remove_rate_limit(aconn, "openai"), bool)
    assert_type(rated.builder().add_rate_key("customer:acme").rate_keys, tuple[str, ...])
    assert_type(JobRegistry([rated]).add_rate_limit("openai", 50, per=1), JobRegistry)
    status = job_status(conn, uuid.uuid4())
    if status is not None:
        assert_type(status.rate_waits, tuple[RateWait, ...])
    set_rate_limit(conn, "k", 1)  # type: ignore[call-overload]  # per is required
