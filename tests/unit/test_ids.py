"""Job ids: UUIDv7, time-ordered, increasing within a process, made a batch at a time."""

from __future__ import annotations

import time
import uuid

from sqlxmq_py import CurrentJob, job
from sqlxmq_py._ids import assign_ids, new_job_ids


@job
async def some_job(current_job: CurrentJob) -> None:
    pass


def test_ids_are_uuid7_with_the_current_millisecond() -> None:
    before = time.time_ns() // 1_000_000
    ids = new_job_ids(1000)
    after = time.time_ns() // 1_000_000
    assert len(ids) == len(set(ids)) == 1000
    assert {i.version for i in ids} == {7}
    assert {i.variant for i in ids} == {uuid.RFC_4122}
    assert all(before <= i.int >> 80 <= after for i in ids)


def test_ids_only_grow_within_a_batch_and_across_calls() -> None:
    ids = [*new_job_ids(5000), *new_job_ids(1), *new_job_ids(0), *new_job_ids(3000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_assign_ids_keeps_ids_set_by_hand_in_batch_order() -> None:
    mine = uuid.uuid4()
    builders = [some_job.builder(), some_job.builder().set_id(mine), some_job.builder()]
    ids = assign_ids([b.to_write() for b in builders])
    assert ids[1] == mine
    assert ids[0] < ids[2]
    assert ids[0].version == ids[2].version == 7
