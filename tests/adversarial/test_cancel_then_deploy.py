"""Issue 9.15: a cancellation requested while a job runs must survive the runner's shutdown. A
deploy stops the runner (which hands unfinished jobs back); the job was asked to stop, so it
must end cancelled, never run again on the next runner."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest

from sqlxmq_py import CurrentJob, JobRegistry, job
from sqlxmq_py.admin import cancel

from .conftest import Runner, state, status, wait_for_state

pytestmark = pytest.mark.timeout(60)  # a hang (a partial fix) fails within a minute


class Run:
    """The test's runs and events (made on the test's event loop)."""

    def __init__(self) -> None:
        self.attempts: list[int] = []
        self.started = asyncio.Event()
        self.forever = asyncio.Event()


_run = Run()


@job(retain_for=3600)
async def ignores_cancel(current_job: CurrentJob) -> None:
    """Never looks at ``current_job.cancelled``: the first run waits until it is cancelled by
    the runner's stop; a later run would complete at once."""
    _run.attempts.append(current_job.attempt)
    if len(_run.attempts) == 1:
        _run.started.set()
        await _run.forever.wait()


@job(retain_for=3600)
async def sentinel(current_job: CurrentJob) -> None:
    """Spawned on the second runner: once it completed, that runner has leased."""


async def test_a_job_cancelled_while_running_stays_cancelled_across_a_restart(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    """issue 9.15: cancel() of a running job returns 'requested'; the runner is then stopped
    with a short timeout (the job is handed back); the job ends cancelled (kept as cancelled in
    the history) and never runs again, also after a second runner started."""
    global _run
    _run = run = Run()
    job_id = ignores_cancel.builder().spawn(conn)
    conn.commit()
    registry = JobRegistry([ignores_cancel, sentinel])
    async with runner(registry, lease=2, stop_timeout=0.3):
        await asyncio.wait_for(run.started.wait(), 15)
        assert cancel(db, [job_id]) == {job_id: "requested"}
    assert run.attempts == [1]
    async with runner(registry, lease=2):
        sentinel_id = sentinel.builder().spawn(conn)
        conn.commit()
        await wait_for_state(db, [sentinel_id], "completed")
        await wait_for_state(db, [job_id], {"cancelled", "completed", "failed", "gone"})
    assert run.attempts == [1], "the cancelled job ran again"
    found = status(db, job_id)
    assert found is not None
    assert found.state == "cancelled"
    assert state(db, sentinel_id) == "completed"
