"""perform(): one job function called with a real CurrentJob built for the test; what it asks
of the queue is recorded, its payload goes through its codec as in production."""

from __future__ import annotations

from typing import Any

import psycopg

from sqlxmq_py import (
    CurrentJob,
)
from sqlxmq_py.testing import perform

from .jobs import Email, Sent, exactly_once, send


async def test_a_typed_job_gets_its_payload_validated_and_returns_its_result(
    sqlxmq_aconn: psycopg.AsyncConnection[Any],
) -> None:
    done = await perform(send, Email("ada@example.com"), pool=sqlxmq_aconn)
    assert done.result == Sent("<hello@ada@example.com>")
    assert (done.outcome, done.completed, done.error, done.completion) == (
        "completed",
        True,
        None,
        None,
    )
    assert isinstance(done.current_job, CurrentJob)
    assert (done.current_job.attempt, done.current_job.max_attempts) == (1, 3)
    assert done.current_job.channel_name == "kit"
    # the job wrote through the pool it was lent: the test's connection, in its transaction
    cur = await sqlxmq_aconn.execute("SELECT note FROM kit_effects")
    assert await cur.fetchall() == [("sent to ada@example.com",)]


async def test_completing_inside_the_jobs_transaction_is_recorded(
    sqlxmq_aconn: psycopg.AsyncConnection[Any],
) -> None:
    done = await perform(exactly_once, "commit", pool=sqlxmq_aconn)
    assert done.completion is not None
    assert (done.completion.result, done.completion.in_transaction) == ("done", True)
    assert done.result == "returned"
    raised = await perform(exactly_once, "raise", pool=sqlxmq_aconn, raise_errors=False)
    assert raised.outcome == "completed"  # it completed before raising: a runner keeps that
    assert isinstance(raised.error, RuntimeError)
