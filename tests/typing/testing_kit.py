"""What the testing kit infers (issue 10.7): checked by ``mypy --strict`` in CI
(``assert_type`` fails the type check if an inferred type changes; lines that must be errors
carry ``# type: ignore[code]``, which ``warn_unused_ignores`` turns into an error if they stop
being one). Never executed."""

from __future__ import annotations

from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, assert_type

import psycopg
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from sqlxmq_py import BlockingCurrentJob, CurrentJob, JobRegistry, job
from sqlxmq_py.hooks import JobOutcome
from sqlxmq_py.testing import (
    Deferred,
    Drained,
    Performed,
    Ran,
    SpawnedJob,
    assert_spawned,
    drain,
    perform,
    perform_sync,
    refute_spawned,
    run_pending,
    spawned,
)


@dataclass
class Email:
    to: str


@dataclass
class Sent:
    message_id: str


@job
async def send(current_job: CurrentJob[Email]) -> Sent:
    return Sent(current_job.payload.to)


@job
def resize(current_job: BlockingCurrentJob[Email]) -> int:
    return len(current_job.payload.to)


@job
async def untyped(current_job: CurrentJob) -> None: ...


registry = JobRegistry([send, resize, untyped])


def sync_side(conn: psycopg.Connection[Any], pool: ConnectionPool[Any]) -> None:
    # a sync connection or pool returns the value; the payload has the job's declared type
    assert_type(spawned(conn, send), list[SpawnedJob[Email]])
    assert_type(assert_spawned(conn, send).payload, Email)
    assert_type(assert_spawned(pool, send, payload=Email("a")), SpawnedJob[Email])
    assert_type(spawned(conn, untyped), list[SpawnedJob[Any]])
    assert_type(spawned(conn, "some.job.name"), list[SpawnedJob[Any]])
    assert_type(refute_spawned(conn, send, channel_name="emails"), None)
    spawned(conn, send, where=lambda found: found.payload.to.endswith("@example.com"))
    spawned(conn, send, where=lambda found: found.payload.too == "")  # type: ignore[attr-defined]
    spawned(conn, send, payload={"to": "a"})  # type: ignore[misc]  # a dict is no Email
    spawned(conn, send, state="done")  # type: ignore[arg-type]  # not a state
    spawned(conn, send, chanel_name="emails")  # type: ignore[call-overload]  # no such filter
    assert_type(run_pending(conn, registry), Drained)
    ran: list[Ran] = run_pending(conn, registry, rate_limits=False)  # still a list of Ran
    assert_type(ran[0].outcome, JobOutcome)
    assert_type(perform_sync(send, Email("a")), Performed[Sent])
    assert_type(perform_sync(resize, Email("a")).result, int)


async def async_side(aconn: psycopg.AsyncConnection[Any], apool: AsyncConnectionPool[Any]) -> None:
    # an async connection or pool returns an awaitable
    pending = spawned(aconn, send)
    _ = assert_type(pending, Coroutine[Any, Any, list[SpawnedJob[Email]]])
    await pending
    assert_type(await spawned(apool, send), list[SpawnedJob[Email]])
    assert_type((await assert_spawned(aconn, send)).payload.to, str)
    assert_type(await refute_spawned(aconn, send), None)
    assert_type(await drain(aconn, registry), Drained)
    assert_type((await drain(aconn, registry)).deferred, list[Deferred])
    assert_type(await drain(apool, registry, retries="now", with_scheduled=True), Drained)
    await drain(aconn, registry, retries="later")  # type: ignore[arg-type]
    # perform: the payload is the declared type, the result the declared return type
    assert_type(await perform(send, Email("a")), Performed[Sent])
    assert_type((await perform(send, Email("a"), pool=aconn)).result, Sent)
    assert_type(await perform(resize, Email("a")), Performed[int])
    assert_type(await perform(untyped, {"any": ["json"]}), Performed[None])
    await perform(send, {"to": "a"})  # type: ignore[misc]  # a dict is no Email
    await perform(send, Email("a"), attempts=2)  # type: ignore[call-overload]  # no such option


async def wrong_kinds(conn: psycopg.Connection[Any], aconn: psycopg.AsyncConnection[Any]) -> None:
    await drain(conn, registry)  # type: ignore[arg-type]  # drain is for async connections
    run_pending(aconn, registry)  # type: ignore[arg-type]  # run_pending for sync ones
