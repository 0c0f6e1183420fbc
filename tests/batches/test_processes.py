"""Exactly-once callbacks under 1,000 concurrent member completions on three runner
processes (members that fail a first attempt and succeed on the retry among them)."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from sqlxmq_py.batch import Batch, batch_status

from ..helpers import wait_until
from ..processes import Child, Processes
from .worker import batch_callback, batch_member


@pytest.fixture
def workers(dsn: str, processes: Processes) -> list[Child]:
    """Three runner processes of ``tests.batches.worker``, each started and ready (the
    ``processes`` fixture kills what is left at the end)."""
    return [processes.python("-m", "tests.batches.worker", dsn, ready="ready") for _ in range(3)]


async def test_callbacks_run_once_after_1000_members_on_three_runners(
    dsn: str, db: psycopg.Connection[Any], workers: list[Child]
) -> None:
    db.execute(
        "CREATE TABLE callback_runs (batch_id uuid, kind text, job_id uuid, status jsonb, "
        "results jsonb)"
    )
    batch = (
        Batch()
        .on_success(batch_callback.builder().set_json("success"))
        .on_finish(batch_callback.builder().set_json("finish"))
        .on_discard(batch_callback.builder().set_json("discard"))
    )
    with psycopg.connect(dsn) as conn:
        spawned = batch.spawn(conn, [batch_member.builder().set_json(i) for i in range(1000)])
        conn.commit()

    def callbacks_ran() -> bool:
        row = db.execute("SELECT count(*) FROM callback_runs").fetchone()
        return row is not None and row[0] >= 2

    await wait_until(callbacks_ran, timeout=300, interval=0.1)
    status = batch_status(db, spawned.id)
    assert status is not None
    assert (status.total, status.pending, status.completed) == (1000, 0, 1000)
    assert status.succeeded
    # both callbacks completed (their rows are gone) and nothing else is left to run
    await wait_until(
        lambda: db.execute("SELECT count(*) FROM mq_jobs").fetchone() == (0,), timeout=60
    )
    runs = db.execute("SELECT kind, status, results FROM callback_runs ORDER BY kind").fetchall()
    expected = sorted(2 * i for i in range(1000))
    assert runs == [
        ("finish", [1000, 0, 0], expected),
        ("success", [1000, 0, 0], expected),
    ]
    row = db.execute("SELECT state FROM mq_history WHERE id = %s", (status.on_discard,)).fetchone()
    assert row == ("cancelled",)
    retried = db.execute(
        "SELECT count(*) FROM mq_history WHERE attempts = 2 AND name = %s",
        (batch_member.name,),
    ).fetchone()
    assert retried == (143,)  # 0, 7, ..., 994 failed their first attempt
    assert all(proc.poll() is None for proc in workers)
