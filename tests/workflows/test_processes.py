"""A 50-step workflow with joins survives a runner SIGKILLed mid-way: every step runs to
completion exactly once in effect, each join after all of its parents and seeing all of their
results."""

from __future__ import annotations

import signal
from typing import Any

import psycopg

from sqlxmq_py.admin import workflow_status
from sqlxmq_py.workflow import Workflow

from ..helpers import wait_until
from ..processes import Processes
from .worker import wf_step

LAYERS = 5
WIDTH = 10


def _parents(layer: int, i: int) -> list[str]:
    """Joins: each step after layer 0 waits for two or three steps of the layer before."""
    if layer == 0:
        return []
    chosen = {(i + k) % WIDTH for k in range(2 + i % 2)}
    return [f"s{layer - 1}_{j}" for j in sorted(chosen)]


def _workflow() -> Workflow:
    wf = Workflow("fifty")
    for layer in range(LAYERS):
        for i in range(WIDTH):
            # a short lease: the killed runner's steps are ready again soon (a live runner
            # renews its leases)
            wf.add(
                f"s{layer}_{i}",
                wf_step.builder().set_lease(2),
                after=_parents(layer, i),
            )
    return wf


async def test_fifty_steps_with_joins_survive_a_sigkilled_runner(
    dsn: str, db: psycopg.Connection[Any], processes: Processes
) -> None:
    db.execute("CREATE TABLE effects (step text NOT NULL, parents integer NOT NULL)")
    victim = processes.python("-m", "tests.workflows.worker", dsn, ready="ready")
    survivor = processes.python("-m", "tests.workflows.worker", dsn, ready="ready")
    with psycopg.connect(dsn) as conn:
        spawned = _workflow().spawn(conn)
        conn.commit()

    def effects() -> int:
        row = db.execute("SELECT count(*) FROM effects").fetchone()
        assert row is not None
        return int(row[0])

    # killed while it runs a step of the third layer (its effect not yet committed)
    victim.wait_line(lambda line: line.startswith("start s2_"), timeout=60)
    victim.signal(signal.SIGKILL)
    victim.wait()
    await wait_until(lambda: effects() >= LAYERS * WIDTH, timeout=120, interval=0.1)

    def finished() -> bool:
        status = workflow_status(db, spawned.id)
        return status is not None and status.finished_at is not None

    await wait_until(finished, timeout=60)
    status = workflow_status(db, spawned.id)
    assert status is not None
    assert status.state == "completed"
    assert len(status.steps) == LAYERS * WIDTH
    rows = db.execute("SELECT step, count(*), min(parents) FROM effects GROUP BY step").fetchall()
    # exactly once in effect, every join saw all of its parents' results
    assert sorted(rows) == sorted(
        (f"s{layer}_{i}", 1, len(_parents(layer, i)))
        for layer in range(LAYERS)
        for i in range(WIDTH)
    )
    for step in status.steps:
        assert step.result == step.name
        finished_at = step.finished_at
        assert finished_at is not None
        for parent in step.parents:
            parent_finished = status.step(parent).finished_at
            assert parent_finished is not None
            assert parent_finished <= finished_at
    assert db.execute("SELECT count(*) FROM mq_jobs").fetchone() == (0,)
    # the kill interrupted a step: it ran again (after its lease expired) on the survivor
    row = db.execute("SELECT count(*) FROM mq_history WHERE attempts > 1").fetchone()
    assert row is not None
    assert row[0] >= 1
    assert survivor.poll() is None
