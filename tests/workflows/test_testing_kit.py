"""Workflows under the testing kit, inside a test's transaction that is never committed: with
the workflow's settlement made immediate (``SET CONSTRAINTS ALL IMMEDIATE``), ``drain`` runs
every step in order, joins and dynamic steps included; the rollback leaves nothing."""

from __future__ import annotations

from typing import Any

import psycopg

from sqlxmq_py import CurrentJob, JobRegistry, job
from sqlxmq_py.admin import workflow_status
from sqlxmq_py.testing import drain
from sqlxmq_py.workflow import Step, Workflow


@job(channel_name="wf-kit")
async def kit_step(current_job: CurrentJob) -> str:
    """Returns its step name and its parents' results, joined; ``fan`` adds two steps."""
    ctx = current_job.workflow
    assert ctx is not None
    seen = await ctx.parent_results(current_job.pool)
    if ctx.step == "fan":
        more = [Step(name=f"x{i}", builder=kit_step.builder(), after=("fan",)) for i in range(2)]
        await ctx.add(
            current_job.pool,
            [*more, Step(name="end", builder=kit_step.builder(), after=("x0", "x1"))],
        )
    return ctx.step + "(" + ",".join(f"{k}:{v}" for k, v in sorted(seen.items())) + ")"


async def test_drain_runs_a_workflow_in_a_rolled_back_transaction(dsn: str) -> None:
    async with await psycopg.AsyncConnection.connect(dsn) as aconn:
        await aconn.execute("SET CONSTRAINTS ALL IMMEDIATE")
        wf = Workflow("kit")
        wf.add("a", kit_step.builder())
        wf.add("b", kit_step.builder())
        wf.add("fan", kit_step.builder(), after=["a", "b"])
        spawned = await wf.spawn(aconn)
        ran = await drain(aconn, JobRegistry([kit_step]), channel_names=["wf-kit"])
        assert [r.outcome for r in ran] == ["completed"] * 6
        status = await workflow_status(aconn, spawned.id)
        assert status is not None
        assert status.state == "completed"
        assert status.step("fan").result == "fan(a:a(),b:b())"
        assert (
            status.step("end").result
            == "end(x0:x0(fan:fan(a:a(),b:b())),x1:x1(fan:fan(a:a(),b:b())))"
        )
        await aconn.rollback()
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM mq_workflows").fetchone() == (0,)


def test_sync_connection_reads(conn: psycopg.Connection[Any]) -> None:
    """The step context works on a sync connection too (what a plain ``def`` step uses)."""
    wf = Workflow("sync")
    wf.add("a", kit_step.builder())
    wf.add("b", kit_step.builder(), after=["a"])
    spawned = wf.spawn(conn)
    conn.commit()
    from sqlxmq_py.workflow import WorkflowContext

    ctx = WorkflowContext(id=spawned.id, step="b")
    assert ctx.parent_results(conn) == {}
    (parent,) = ctx.parents(conn)
    assert (parent.step, parent.state, parent.result) == ("a", "pending", None)
