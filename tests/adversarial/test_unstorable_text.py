"""Issue 9.3: text PostgreSQL cannot store as it is (a NUL character, a lone surrogate) in one
job's error message or result must neither spoil the failure batch it is written in (every
job's own error is recorded, never "lease expired") nor be lost: errors are recorded with the
character made printable, results are stored (as JSON escapes, which PostgreSQL's ``json``
type accepts) and read back exactly."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from sqlxmq_py import CurrentJob, JobRegistry, job
from sqlxmq_py.results import wait_for_result

from .conftest import Runner, status, wait_for_state

pytestmark = pytest.mark.timeout(60)  # a hang (a partial fix) fails within a minute

BAD_TEXT = {"nul": "\x00", "lone_surrogate": "\ud800"}
TOGETHER = 4
"""Jobs that fail in one batch; the last one's message holds the bad character."""


class Batch:
    """The jobs of one test: how many started, and the gate they wait at (made on the test's
    event loop)."""

    def __init__(self) -> None:
        self.started = 0
        self.all_started = asyncio.Event()
        self.gate = asyncio.Event()


_batch = Batch()


@job(retries=0)
async def fails_together(current_job: CurrentJob) -> None:
    """Waits until every job of the batch runs and the test opens the gate, then fails: all of
    them in the same loop turn, so their failures are written in one batch."""
    _batch.started += 1
    if _batch.started == TOGETHER:
        _batch.all_started.set()
    await _batch.gate.wait()
    n, bad = current_job.json()
    raise ValueError(f"job {n} failed" if bad is None else f"job {n} before{BAD_TEXT[bad]}after")


@pytest.mark.parametrize("bad", list(BAD_TEXT))
async def test_a_failure_batch_records_every_error_despite_one_unstorable_message(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner, bad: str
) -> None:
    """issue 9.3: several jobs fail in the same failure batch, one with a NUL (or a lone
    surrogate) in its message: every job ends failed with its OWN error (never "lease expired"),
    and the bad character is recorded as something printable."""
    global _batch
    _batch = batch = Batch()
    payloads = [[n, None] for n in range(TOGETHER - 1)] + [[TOGETHER - 1, bad]]
    ids = [fails_together.builder().set_json(p).spawn(conn) for p in payloads]
    conn.commit()
    async with runner(JobRegistry([fails_together]), concurrency=(8, 8), lease=2):
        await asyncio.wait_for(batch.all_started.wait(), 15)
        batch.gate.set()
        await wait_for_state(db, ids, "failed")
    errors = []
    for job_id in ids:
        found = status(db, job_id)
        assert found is not None
        errors.append(found.last_error or "")
    for n, error in enumerate(errors[:-1]):
        assert error.startswith(f"ValueError: job {n} failed"), error[:200]
    last = errors[-1]
    assert last.startswith(f"ValueError: job {TOGETHER - 1} before"), last[:200]
    assert "\x00" not in last
    between = re.match(rf"ValueError: job {TOGETHER - 1} before(.+?)after", last)
    assert between is not None, last[:200]
    assert between.group(1).isprintable(), repr(between.group(1))


RESULT = {
    "nul": "a\x00b",
    "lone_surrogate": "c\ud800d",
    "both": ["\x00", "\udfff", "e\x00\udbffz"],
    "key with \x00 and \ud800": True,
}


@job(retain_for=3600)
async def returns_unstorable_text(current_job: CurrentJob) -> dict[str, Any]:
    return RESULT


async def test_a_result_with_nul_and_lone_surrogates_is_stored_and_read_back_exactly(
    conn: psycopg.Connection[Any],
    db: psycopg.Connection[Any],
    apool: AsyncConnectionPool[Any],
    runner: Runner,
) -> None:
    """issue 9.3: a job that returns a result with NUL characters and lone surrogates
    completes, and its result is kept and read back exactly (wait_for_result and job_status)."""
    job_id = returns_unstorable_text.builder().spawn(conn)
    conn.commit()
    async with runner(JobRegistry([returns_unstorable_text]), lease=2):
        result = await wait_for_result(apool, job_id, timeout=15)
    assert result == RESULT
    found = status(db, job_id)
    assert found is not None
    assert found.state == "completed"
    assert found.result == RESULT
