"""Issue 9.16: an async job that swallows every cancellation must not keep its lease, and the
runner, forever. Past its timeout it is cancelled; ``set_cancel_grace(seconds)`` bounds how long
a cancelled job has to finish before the runner abandons it, records the attempt as failed
(``JobTimeoutError``) and can stop."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest

from sqlxmq_py import CurrentJob, JobRegistry, job

from .conftest import status, wait_for_state

pytestmark = pytest.mark.timeout(60)  # a hang (a partial fix) fails within a minute


class Stubborn:
    """The test's job: its events (made on the test's event loop) and when it may end."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.finished = asyncio.Event()
        self.release = asyncio.Event()
        self.cancellations = 0


_stubborn = Stubborn()


@job(timeout=0.5, retries=0)
async def swallows_cancellation(current_job: CurrentJob) -> None:
    """Catches every CancelledError and goes on, until the test lets it end."""
    stubborn = _stubborn
    stubborn.started.set()
    while not stubborn.release.is_set():
        try:
            await stubborn.release.wait()
        except asyncio.CancelledError:
            stubborn.cancellations += 1
    stubborn.finished.set()


async def test_a_timed_out_job_that_swallows_cancellation_fails_and_stop_returns(
    dsn: str, conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    """issue 9.16: with ``set_cancel_grace(0.5)``, the attempt of a job (timeout 0.5 s) that
    swallows every cancellation is recorded as failed with JobTimeoutError, and
    ``handle.stop()`` returns although the coroutine still runs."""
    global _stubborn
    _stubborn = stubborn = Stubborn()
    job_id = swallows_cancellation.builder().spawn(conn)
    conn.commit()
    options = (
        JobRegistry([swallows_cancellation])
        .runner(dsn)
        .set_cancel_grace(0.5)
        .set_lease(2)
        .set_poll_interval(0.5)
        .set_maintenance_interval(0.1)
    )
    handle = await options.run()
    try:
        await asyncio.wait_for(stubborn.started.wait(), 15)
        await wait_for_state(db, [job_id], "failed", timeout=15)
        found = status(db, job_id)
        assert found is not None
        assert found.last_error is not None
        assert found.last_error.startswith("JobTimeoutError"), found.last_error[:300]
        assert stubborn.cancellations >= 1
        await asyncio.wait_for(handle.stop(timeout=1), 20)
        assert not stubborn.finished.is_set()  # stop() did not wait for the swallowing job
    finally:
        stubborn.release.set()
        await asyncio.wait_for(stubborn.finished.wait(), 10)
        await asyncio.wait_for(handle.stop(timeout=1), 20)
