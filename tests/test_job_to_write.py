"""JobToWrite: the frozen description of a job that JobBuilder hands to every spawn path, and
the rule for a new job's first state (no database)."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from sqlxmq_py import JobBuilder
from sqlxmq_py._insert import COPY_MIN_JOBS, copy_rows, insert_statement
from sqlxmq_py.builder import SPAWN_HOOKS
from sqlxmq_py.hooks import add_spawn_hook, remove_spawn_hook
from sqlxmq_py.job_to_write import JobToWrite, initial_state
from sqlxmq_py.states import JobState


def test_to_write_holds_every_option_under_its_column_name() -> None:
    parent = uuid.uuid4()
    job_id = uuid.uuid4()
    builder = (
        JobBuilder("n", channel_name="c", retries=2, priority=5, lease=9)
        .set_id(job_id)
        .set_channel_args("a")
        .set_raw_json('{"x": 1}')
        .set_raw_bytes(b"\x00")
        .set_delay(3)
        .set_job_key("k", "preserve_run_at", throttle=60)
        .set_after([parent], run_after_failed_parents=True)
        .set_header("h", "v")
        .set_dead_letter("dl", channel_name="dead")
        .set_commit_interval(30)
        .set_ordered()
    )
    job = builder.to_write()
    assert job == JobToWrite(
        id=job_id,
        name="n",
        channel_name="c",
        channel_args="a",
        payload_json='{"x": 1}',
        payload_bytes=b"\x00",
        delay=timedelta(seconds=3),
        run_at=None,
        commit_interval=timedelta(seconds=30),
        max_attempts=3,
        retry_backoff=timedelta(seconds=1),
        lease=timedelta(seconds=9),
        priority=5,
        retain_for=None,
        dead_letter="dl",
        dead_letter_channel="dead",
        job_key="k",
        job_key_mode="preserve_run_at",
        throttle=timedelta(seconds=60),
        ordered=True,
        after=(parent,),
        run_after_failed_parents=True,
        headers={"h": "v"},
    )
    assert {f.name for f in dataclasses.fields(JobToWrite)} == set(vars(job))


def test_a_job_to_write_is_frozen_and_later_setters_leave_it_alone() -> None:
    builder = JobBuilder("n").set_header("h", "1")
    job = builder.to_write()
    builder.set_header("h", "2").set_channel_name("other").set_priority(9)
    assert job.headers == {"h": "1"}
    assert (job.channel_name, job.priority) == ("", 0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        job.priority = 1  # type: ignore[misc]


def test_a_dead_letter_job_lends_its_channel_unless_one_is_given() -> None:
    target = JobBuilder("target", channel_name="graveyard")

    class Named:
        name = "target"

        def builder(self) -> JobBuilder:
            return target.copy()

    assert JobBuilder("n").set_dead_letter(Named()).to_write().dead_letter_channel == "graveyard"
    given = JobBuilder("n").set_dead_letter(Named(), channel_name="x").to_write()
    assert (given.dead_letter, given.dead_letter_channel) == ("target", "x")
    assert JobBuilder("n").set_dead_letter("by-name").to_write().dead_letter_channel is None


@pytest.fixture
def header_hook() -> Iterator[None]:
    def hook(builder: JobBuilder) -> None:
        builder.set_header("trace", "t-1")

    add_spawn_hook(hook)
    yield
    remove_spawn_hook(hook)


def test_spawn_hooks_amend_the_builder_before_the_job_to_write_is_taken(
    header_hook: None,
) -> None:
    builder = JobBuilder("n")
    SPAWN_HOOKS.run([builder])
    assert builder.to_write().headers == {"trace": "t-1"}


@pytest.mark.parametrize(
    ("amend", "state"),
    [
        (lambda b: b, JobState.READY),
        (lambda b: b.set_commit_interval(5), JobState.UNCOMMITTED),
        (lambda b: b.set_commit_interval(5).set_after([uuid.uuid4()]), JobState.UNCOMMITTED),
        (lambda b: b.set_delay(1), None),  # the database's clock decides
        (lambda b: b.set_run_at(datetime(2000, 1, 1, tzinfo=UTC)), None),
        (lambda b: b.set_ordered(), None),  # an earlier job of its chain decides
        (lambda b: b.set_job_key("k"), None),  # a waiting job holding the key decides
        (lambda b: b.set_after([uuid.uuid4()]), None),  # its parents decide
    ],
)
def test_initial_state_is_decided_once(amend: object, state: JobState | None) -> None:
    job = amend(JobBuilder("n")).to_write()  # type: ignore[operator]
    assert initial_state(job) is state
    # COPY takes exactly the jobs known to start ready, and writes them with the ready code
    batch = copy_rows([job] * COPY_MIN_JOBS)
    assert (batch is not None) == (state is JobState.READY)
    if batch is not None:
        assert {row[3] for row in batch.jobs} == {b"r"}


def test_one_plain_job_binds_its_own_id_and_the_job_to_writes_fields() -> None:
    job_id = uuid.uuid4()
    statement, params, interpret = insert_statement([JobBuilder("n").set_id(job_id).to_write()])
    assert b"INSERT INTO mq_jobs" in statement
    assert (params["id"], params["name"], params["max_attempts"]) == (job_id, "n", 5)
    assert interpret([]) == [job_id]
