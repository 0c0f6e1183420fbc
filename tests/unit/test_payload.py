"""Payloads refused before they reach the database, and batches that COPY cannot carry."""

from __future__ import annotations

import json
import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sqlxmq_py import (
    Checkpoint,
    CurrentJob,
    PayloadError,
    job,
)
from sqlxmq_py._insert import COPY_MIN_JOBS, copy_rows

# a fixed sequence of examples (no flakiness)
FAST = settings(max_examples=25, deadline=None, derandomize=True, database=None)


@job
async def echo(current_job: CurrentJob) -> None:
    pass


@job(channel_name="bulk", retries=2, backoff=3, lease=90, retain_for=60, priority=1)
async def bulk(current_job: CurrentJob) -> None:
    pass


not_json = st.sampled_from(
    [math.nan, math.inf, -math.inf, {1, 2}, object(), b"bytes", {"k": [math.nan]}, "\ud800"]
)


def _invalid_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return True
    return False


@FAST
@given(value=not_json, text=st.text().filter(lambda t: _invalid_json(t)))
def test_refused_payloads_raise_payload_error(value: Any, text: str) -> None:
    with pytest.raises(PayloadError):
        echo.builder().set_json(value)
    with pytest.raises(PayloadError):
        echo.builder().set_raw_json(text)
    with pytest.raises(PayloadError):
        Checkpoint().set_json(value)


def test_json_payload_with_a_huge_int_is_refused_saying_why() -> None:
    with pytest.raises(PayloadError) as caught:
        echo.builder().set_json({"n": 10**5000})
    assert "NaN or Infinity" not in str(caught.value)  # it has neither
    assert "digits" in str(caught.value)


@pytest.mark.parametrize(
    "odd",
    [
        lambda b: b.set_delay(1),
        lambda b: b.set_run_at(datetime.now(UTC) + timedelta(hours=1)),
        lambda b: b.set_commit_interval(60),
        lambda b: b.set_job_key("k"),
        lambda b: b.set_ordered(True),
        lambda b: b.set_after([uuid.uuid4()]),
    ],
    ids=["delay", "run_at", "two-phase", "job key", "ordered", "after"],
)
def test_one_job_copy_cannot_express_sends_the_batch_through_insert(odd: Any) -> None:
    batch = [bulk.builder() for _ in range(COPY_MIN_JOBS)]
    odd(batch[500])
    assert copy_rows([b.to_write() for b in batch]) is None
