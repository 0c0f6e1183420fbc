"""What the batch API infers: checked by ``mypy --strict`` and pyright (``assert_type`` fails
the check if an inferred type changes). Never executed."""

from __future__ import annotations

import uuid
from collections.abc import Coroutine
from typing import Any, assert_type

import psycopg
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from sqlxmq_py import BlockingCurrentJob, CurrentJob, JobBuilder, job
from sqlxmq_py.batch import (
    Batch,
    BatchMember,
    BatchStatus,
    SpawnedBatch,
    add,
    batch_id_of,
    batch_results,
    batch_status,
    cancel_batch,
    seal,
)


@job
async def member(current_job: CurrentJob) -> int:
    return 1


@job
def report(current_job: BlockingCurrentJob) -> None:
    assert_type(batch_id_of(current_job), uuid.UUID | None)


batch = Batch(retain_for=3600).on_success(report.builder()).on_finish(report.builder())
assert_type(batch, Batch)
assert_type(batch.on_discard(report.builder().set_json("x")), Batch)
builders = [member.builder().set_json(i) for i in range(3)]
assert_type(builders, list[JobBuilder])


def sync_side(conn: psycopg.Connection[Any], pool: ConnectionPool[Any]) -> None:
    spawned = batch.spawn(conn, builders)
    assert_type(spawned, SpawnedBatch)
    assert_type(spawned.id, uuid.UUID)
    assert_type(spawned.member_ids, list[uuid.UUID])
    assert_type(batch.spawn(pool, builders, seal=False), SpawnedBatch)
    assert_type(add(conn, spawned.id, builders), SpawnedBatch)
    assert_type(seal(conn, spawned.id), BatchStatus)
    status = batch_status(pool, spawned.id)
    assert_type(status, BatchStatus | None)
    if status is not None:
        assert_type(status.pending, int)
        assert_type(status.succeeded, bool | None)
    assert_type(batch_results(conn, spawned.id), list[BatchMember])
    assert_type(batch_results(conn, spawned.id, state="failed"), list[BatchMember])
    assert_type(cancel_batch(conn, spawned.id), tuple[int, int])
    batch_results(conn, spawned.id, state="done")  # type: ignore[call-overload]


async def async_side(aconn: psycopg.AsyncConnection[Any], apool: AsyncConnectionPool[Any]) -> None:
    pending: Coroutine[Any, Any, SpawnedBatch] = batch.spawn(aconn, builders)
    spawned = await pending
    assert_type(spawned, SpawnedBatch)
    assert_type(await batch.spawn(apool, builders), SpawnedBatch)
    assert_type(await add(apool, spawned.id, builders), SpawnedBatch)
    assert_type(await seal(aconn, spawned.id), BatchStatus)
    assert_type(await batch_status(aconn, spawned.id), BatchStatus | None)
    assert_type(await batch_results(apool, spawned.id), list[BatchMember])
    assert_type(await cancel_batch(aconn, spawned.id, "stop"), tuple[int, int])


async def in_a_job(current_job: CurrentJob, conn: psycopg.AsyncConnection[Any]) -> None:
    batch_id = batch_id_of(current_job)
    assert_type(batch_id, uuid.UUID | None)
    if batch_id is not None:
        assert_type(await batch_results(conn, batch_id), list[BatchMember])
