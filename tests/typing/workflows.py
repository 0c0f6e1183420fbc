"""What the workflow API infers: checked by ``mypy --strict`` (``assert_type`` fails the check
if an inferred type changes). Never executed."""

from __future__ import annotations

import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, assert_type

import psycopg
from psycopg_pool import AsyncConnectionPool

from sqlxmq_py import BlockingCurrentJob, CurrentJob, job
from sqlxmq_py.admin import (
    WorkflowCancelled,
    cancel_workflow,
    retry_step,
    workflow_status,
)
from sqlxmq_py.workflow import (
    ParentResult,
    SpawnedWorkflow,
    Step,
    Workflow,
    WorkflowContext,
    WorkflowStatus,
    add_steps,
)


@dataclass
class Total:
    value: int


@job
async def extract(current_job: CurrentJob) -> Total:
    ctx = current_job.workflow
    assert_type(ctx, WorkflowContext | None)
    assert ctx is not None
    assert_type(ctx.id, uuid.UUID)
    assert_type(ctx.step, str)
    results = await ctx.parent_results(current_job.pool, jobs=[extract])
    assert_type(results, dict[str, Any])
    parents = await ctx.parents(current_job.pool)
    assert_type(parents, list[ParentResult])
    added = await ctx.add(
        current_job.pool, [Step(name="more", builder=load.builder())], limits={"g": 2}
    )
    assert_type(added, dict[str, uuid.UUID])
    assert_type(await ctx.skip(current_job.pool, "nothing to do"), bool)
    return Total(value=1)


@job
def load(current_job: BlockingCurrentJob) -> None:
    ctx = current_job.workflow
    assert ctx is not None
    with psycopg.connect("") as conn:
        assert_type(ctx.parent_results(conn), dict[str, Any])


wf = Workflow("etl", retain_for=3600)
assert_type(wf.add("a", extract.builder()), str)
assert_type(wf.add("b", load.builder(), after=["a"], on_parent_failure="skip"), str)
assert_type(wf.limit("g", 3), Workflow)


def sync_side(conn: psycopg.Connection[Any]) -> None:
    spawned = wf.spawn(conn)
    assert_type(spawned, SpawnedWorkflow)
    assert_type(spawned.step_ids, dict[str, uuid.UUID])
    assert_type(workflow_status(conn, spawned.id), WorkflowStatus | None)
    assert_type(cancel_workflow(conn, spawned.id), WorkflowCancelled)
    assert_type(retry_step(conn, spawned.id, "a"), uuid.UUID)
    assert_type(add_steps(conn, spawned.id, []), dict[str, uuid.UUID])


async def async_side(aconn: psycopg.AsyncConnection[Any], apool: AsyncConnectionPool[Any]) -> None:
    pending: Coroutine[Any, Any, SpawnedWorkflow] = wf.spawn(aconn)
    spawned = await pending
    assert_type(await workflow_status(apool, spawned.id), WorkflowStatus | None)
    assert_type(await cancel_workflow(aconn, spawned.id), WorkflowCancelled)
    assert_type(await retry_step(aconn, spawned.id, "a"), uuid.UUID)
