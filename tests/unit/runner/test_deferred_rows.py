"""A lease's rows: the leased ones, and those it deferred for their rate keys (no token)."""

from __future__ import annotations

import uuid

from sqlxmq_py.runner._leasing import split_deferred
from sqlxmq_py.runner._pacing import Pacer


def row(token: uuid.UUID | None) -> tuple[object, ...]:
    return (uuid.uuid4(), token, *([None] * 13))


def test_rows_without_a_token_are_counted_as_deferred() -> None:
    leased = [row(uuid.uuid4()), row(uuid.uuid4())]
    rows, deferred = split_deferred([*leased, row(None), row(None), row(None)])
    assert (rows, deferred) == (leased, 3)
    assert split_deferred([]) == ([], 0)


def test_a_batch_partly_deferred_counts_as_full_and_leases_again_at_once() -> None:
    pacer = Pacer(min_concurrency=4, max_concurrency=8, poll_interval=60.0, max_bytes=2**30)
    plan = pacer.plan(0.0, 0, 0)
    # 1 leased and 7 deferred of 8: the runner passes 1 + 7 as what the lease looked at
    pacer.polled(0.0, 1 + 7, plan.want, idle=True)
    assert pacer.plan(0.0, 1, 0).want == 7  # at once, not after the poll interval
    plan = pacer.plan(0.0, 1, 0)
    pacer.polled(0.0, 1, plan.want, idle=True)  # 1 of 7, nothing deferred: the queue is empty
    assert pacer.plan(0.0, 2, 0).want == 0
