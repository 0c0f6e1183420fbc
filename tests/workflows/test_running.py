"""Workflows under a real runner: a step that adds a bounded fan-out to its own workflow and a
join that reads every shard's result, checked from inside the jobs; typed parents' results;
the context outside a workflow."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

import psycopg

from sqlxmq_py import CurrentJob, job
from sqlxmq_py.workflow import Step, Workflow

from ..helpers import Runner, wait_until
from ._util import status

BOUND = 3
SHARDS = 12


@job(channel_name="wf-run", retries=0)
async def fan(current_job: CurrentJob) -> None:
    """Adds SHARDS shards (at most BOUND at once) and a join after them, in the transaction
    that completes it."""
    ctx = current_job.workflow
    assert ctx is not None
    shards = [
        Step(name=f"shard{i}", builder=shard.builder().set_json(i), group="shards")
        for i in range(SHARDS)
    ]
    join = Step(name="sum", builder=total.builder(), after=tuple(s.name for s in shards))
    async with current_job.pool.connection() as conn, conn.transaction():
        await ctx.add(conn, [*shards, join], limits={"shards": BOUND})
        await current_job.complete(conn)


@job(channel_name="wf-run", retries=0)
async def shard(current_job: CurrentJob) -> int:
    """Counts itself as running (committed), stays a little, then stops counting itself in the
    transaction that completes it: the gauge is exact at every release."""
    async with current_job.pool.connection() as conn, conn.transaction():
        cur = await conn.execute("UPDATE gauge SET now = now + 1 RETURNING now")
        row = await cur.fetchone()
        assert row is not None
        await conn.execute("INSERT INTO seen (n) VALUES (%s)", (row[0],))
    await asyncio.sleep(0.02)  # work, so that shards overlap
    value = int(current_job.json()) ** 2
    async with current_job.pool.connection() as conn, conn.transaction():
        await conn.execute("UPDATE gauge SET now = now - 1")
        await current_job.complete(conn, result=value)
    return value


@job(channel_name="wf-run", retries=0)
async def total(current_job: CurrentJob) -> None:
    """Records the sum of its parents' results."""
    ctx = current_job.workflow
    assert ctx is not None
    results = await ctx.parent_results(current_job.pool)
    async with current_job.pool.connection() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO sums (step, parents, total) VALUES (%s, %s, %s)",
            (ctx.step, len(results), sum(results.values())),
        )
        await current_job.complete(conn)


async def test_a_bounded_dynamic_fan_out_then_a_join(
    runner: Runner, db: psycopg.Connection[Any], dsn: str
) -> None:
    db.execute("CREATE TABLE gauge (now integer NOT NULL)")
    db.execute("INSERT INTO gauge VALUES (0)")
    db.execute("CREATE TABLE seen (n integer NOT NULL)")
    db.execute("CREATE TABLE sums (step text PRIMARY KEY, parents integer, total integer)")
    wf = Workflow("fan")
    wf.add("fan", fan.builder())
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        spawned = await wf.spawn(conn)
        await conn.commit()
    async with runner([fan, shard, total], concurrency=(8, 8)):
        await wait_until(
            lambda: db.execute("SELECT count(*) FROM sums").fetchone() == (1,), timeout=60
        )
    assert db.execute("SELECT parents, total FROM sums").fetchone() == (
        SHARDS,
        sum(i * i for i in range(SHARDS)),
    )
    row = db.execute("SELECT count(*), max(n) FROM seen").fetchone()
    assert row is not None
    assert row[0] == SHARDS
    assert 1 <= row[1] <= BOUND
    st = status(db, spawned.id)
    assert st.state == "completed"
    assert [s.name for s in st.steps] == ["fan", *(f"shard{i}" for i in range(SHARDS)), "sum"]
    assert st.step("shard4").result == 16
    assert st.step("shard4").group == "shards"


@dataclass(frozen=True)
class Measure:
    """A typed result."""

    name: str
    value: float


@job(channel_name="wf-typed", retries=0)
async def measure(current_job: CurrentJob[str]) -> Measure:
    """Returns a typed result."""
    return Measure(name=current_job.payload, value=len(current_job.payload) / 2)


@job(channel_name="wf-typed", retries=0)
async def report(current_job: CurrentJob) -> None:
    """Records its parents' results as decoded, with their types."""
    ctx = current_job.workflow
    assert ctx is not None
    typed = await ctx.parent_results(current_job.pool, jobs=[measure])
    plain = await ctx.parent_results(current_job.pool)
    parents = await ctx.parents(current_job.pool, jobs=[measure])
    async with current_job.pool.connection() as conn, conn.transaction():
        for name, value in typed.items():
            assert isinstance(value, Measure)
            await conn.execute(
                "INSERT INTO reports (step, kind, value, plain) VALUES (%s, %s, %s, %s)",
                (name, type(value).__name__, value.value, str(plain[name])),
            )
        await conn.execute(
            "INSERT INTO reports (step, kind) VALUES ('parents', %s)",
            (",".join(f"{p.step}:{p.state}" for p in parents),),
        )
        await current_job.complete(conn)


async def test_typed_parents_results(runner: Runner, db: psycopg.Connection[Any], dsn: str) -> None:
    db.execute("CREATE TABLE reports (step text, kind text, value float, plain text)")
    wf = Workflow("typed")
    wf.add("m1", measure.builder().set_json("ab"))
    wf.add("m2", measure.builder().set_json("abcd"))
    wf.add("report", report.builder(), after=["m1", "m2"])
    with psycopg.connect(dsn) as conn:
        spawned = wf.spawn(conn)
        conn.commit()
    async with runner([measure, report]):
        await wait_until(
            lambda: status(db, spawned.id).state == "completed", timeout=30, interval=0.05
        )
    rows = db.execute("SELECT step, kind, value, plain FROM reports ORDER BY step").fetchall()
    assert rows == [
        ("m1", "Measure", 1.0, "{'name': 'ab', 'value': 1.0}"),
        ("m2", "Measure", 2.0, "{'name': 'abcd', 'value': 2.0}"),
        ("parents", "m1:completed,m2:completed", None, None),
    ]


@job(channel_name="wf-plain", retries=0)
async def outside(current_job: CurrentJob) -> None:
    """Records whether it sees a workflow."""
    async with current_job.pool.connection() as conn, conn.transaction():
        await conn.execute("INSERT INTO outside VALUES (%s)", (current_job.workflow is None,))
        await current_job.complete(conn)


async def test_a_job_outside_any_workflow_has_no_context(
    runner: Runner, db: psycopg.Connection[Any], dsn: str
) -> None:
    db.execute("CREATE TABLE outside (none boolean)")
    with psycopg.connect(dsn) as conn:
        outside.builder().spawn(conn)
        conn.commit()
    async with runner([outside]):
        await wait_until(lambda: db.execute("SELECT count(*) FROM outside").fetchone() == (1,))
    assert db.execute("SELECT none FROM outside").fetchone() == (True,)


_barriers: dict[str, asyncio.Barrier] = {}


async def _meet(current_job: CurrentJob) -> None:
    """Waits until the other parent of the same join is running too (on the other runner)."""
    ctx = current_job.workflow
    assert ctx is not None
    barrier = _barriers.setdefault(str(ctx.id), asyncio.Barrier(2))
    # (each runner has a slot for every parent, so both meet; were one late, the test would
    # still hold, with the parents ending apart)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(barrier.wait(), timeout=10)


@job(channel_name="wf-left", retries=0)
async def left(current_job: CurrentJob) -> str:
    """A parent served only by the first runner."""
    await _meet(current_job)
    return "left"


@job(channel_name="wf-right", retries=0)
async def right(current_job: CurrentJob) -> str:
    """A parent served only by the second runner."""
    await _meet(current_job)
    return "right"


@job(channel_name="wf-join", retries=0)
async def joined(current_job: CurrentJob) -> None:
    """Records that it ran and what it saw, in the transaction that completes it."""
    ctx = current_job.workflow
    assert ctx is not None
    seen = await ctx.parent_results(current_job.pool)
    async with current_job.pool.connection() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO joins (workflow_id, seen) VALUES (%s, %s)",
            (ctx.id, ",".join(f"{k}={v}" for k, v in sorted(seen.items()))),
        )
        await current_job.complete(conn)


async def test_joins_whose_parents_end_together_on_two_runners_run_once(
    runner: Runner, db: psycopg.Connection[Any], dsn: str
) -> None:
    """Twenty joins, each after a parent on one runner and a parent on the other that finish
    together (each waits for the other to run): each join runs once, after both."""
    db.execute("CREATE TABLE joins (workflow_id uuid, seen text)")
    ids = []
    with psycopg.connect(dsn) as conn:
        for _ in range(20):
            wf = Workflow("pair")
            wf.add("l", left.builder())
            wf.add("r", right.builder())
            wf.add("j", joined.builder(), after=["l", "r"])
            ids.append(wf.spawn(conn).id)
        conn.commit()
    jobs = [left, right, joined]
    async with (
        runner(jobs, channel_names=["wf-left", "wf-join"], concurrency=(24, 24)),
        runner(jobs, channel_names=["wf-right", "wf-join"], concurrency=(24, 24)),
    ):
        await wait_until(
            lambda: db.execute("SELECT count(*) FROM joins").fetchone() == (20,), timeout=60
        )
        await wait_until(
            lambda: all(status(db, i).finished_at is not None for i in ids), timeout=30
        )
    rows = db.execute("SELECT workflow_id, count(*), min(seen) FROM joins GROUP BY 1").fetchall()
    assert sorted(rows) == sorted((i, 1, "l=left,r=right") for i in ids)
    attempts = db.execute(
        "SELECT attempts, count(*) FROM mq_history WHERE name = %s GROUP BY 1", (joined.name,)
    ).fetchall()
    assert attempts == [(1, 20)]


_slow_started = asyncio.Event()


@job(channel_name="wf-cancel", retries=3)
async def slow(current_job: CurrentJob) -> None:
    """Runs until asked to stop, then raises (recorded as cancelled, not retried)."""
    _slow_started.set()
    while True:
        await asyncio.sleep(0.02)  # a slice of the job's own work, then a look at its flag
        if current_job.cancelled:
            raise RuntimeError("stopped: cancelled")


@job(channel_name="wf-cancel", retries=0)
async def never(current_job: CurrentJob) -> None:
    """Must not run: its workflow is cancelled before it is released."""
    async with current_job.pool.connection() as conn, conn.transaction():
        await conn.execute("INSERT INTO ran VALUES (%s)", (current_job.name,))


async def test_cancel_a_workflow_while_a_step_runs(
    runner: Runner, db: psycopg.Connection[Any], dsn: str
) -> None:
    from sqlxmq_py.admin import cancel_workflow

    db.execute("CREATE TABLE ran (name text)")
    _slow_started.clear()
    wf = Workflow("doomed")
    wf.add("slow", slow.builder())
    wf.add("after", never.builder(), after=["slow"])
    wf.add("anyway", never.builder(), after=["slow"], on_parent_failure="run")
    with psycopg.connect(dsn) as conn:
        spawned = wf.spawn(conn)
        conn.commit()
    async with runner([slow, never], lease=1.5):
        await asyncio.wait_for(_slow_started.wait(), 30)
        done = cancel_workflow(db, spawned.id)
        db.commit()
        assert (done.cancelled, done.requested) == (2, 1)
        await wait_until(lambda: status(db, spawned.id).finished_at is not None, timeout=30)
    st = status(db, spawned.id)
    assert st.state == "cancelled"
    assert {s.name: s.state for s in st.steps} == {
        "slow": "cancelled",
        "after": "cancelled",
        "anyway": "cancelled",
    }
    assert st.step("slow").attempts == 1  # cancelled, not retried
    assert db.execute("SELECT count(*) FROM ran").fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM mq_jobs").fetchone() == (0,)
