"""The rule that sets a new job's state lives in one SQL function, ``mq_new_state``: the first
of uncommitted, waiting, blocked, scheduled and ready that applies. Every way of writing a job
asks it, and the Python mirror that picks the jobs COPY writes as ready agrees with it."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from sqlxmq_py import JobBuilder, spawn_many
from sqlxmq_py._insert import COPY_MIN_JOBS
from sqlxmq_py.job_to_write import initial_state
from sqlxmq_py.states import LABELS, JobState

Amend = Callable[[JobBuilder[Any]], JobBuilder[Any]]


def _expected(uncommitted: bool, waiting: bool, blocked: bool, future: bool) -> str:
    for applies, code in ((uncommitted, "u"), (waiting, "w"), (blocked, "b"), (future, "s")):
        if applies:
            return code
    return "r"


def test_the_first_state_that_applies_is_the_new_jobs(db: psycopg.Connection[Any]) -> None:
    for facts in itertools.product((False, True), repeat=4):
        (state,) = db.execute(
            "SELECT mq_new_state(%s, %s, %s, now() + %s::interval)::text",
            (*facts[:3], "1 hour" if facts[3] else "0"),
        ).fetchone() or (None,)
        assert state == _expected(*facts), facts
    # a fact nobody knows (NULL) does not apply; nor does a time that is not given
    row = db.execute("SELECT mq_new_state(NULL, NULL, NULL, NULL)::text").fetchone()
    assert row == ("r",)


def _states(db: psycopg.Connection[Any], ids: list[uuid.UUID]) -> set[str]:
    rows = db.execute("SELECT state::text FROM mq_jobs WHERE id = ANY(%s)", (ids,)).fetchall()
    assert len(rows) == len(ids)
    return {row[0] for row in rows}


@pytest.mark.parametrize(
    ("amend", "code"),
    [
        (lambda b: b, "r"),
        (lambda b: b.set_commit_interval(60), "u"),
        (lambda b: b.set_delay(3600), "s"),
        (lambda b: b.set_commit_interval(60).set_delay(3600), "u"),
        (lambda b: b.set_job_key(f"k-{uuid.uuid4()}"), "r"),
        (lambda b: b.set_job_key(f"k-{uuid.uuid4()}").set_delay(3600), "s"),
        (lambda b: b.set_job_key(f"k-{uuid.uuid4()}").set_commit_interval(60), "u"),
        (lambda b: b.add_rate_key("tenant:1"), "r"),
    ],
)
@pytest.mark.parametrize("count", [1, 3, COPY_MIN_JOBS])
def test_every_way_of_writing_a_job_starts_it_where_the_rule_says(
    conn: psycopg.Connection[Any],
    db: psycopg.Connection[Any],
    amend: Amend,
    code: str,
    count: int,
) -> None:
    """One job (insert_one or mq_insert), a few (insert_plain or mq_insert) and a COPY-sized
    batch (COPY when every job may start ready), each job keyed apart."""
    builders = [amend(JobBuilder("n")) for _ in range(count)]
    mirror = initial_state(builders[0].to_write())
    ids = [builders[0].spawn(conn)] if count == 1 else spawn_many(conn, builders)
    conn.commit()
    assert _states(db, ids) == {code}
    if mirror is not None:  # where Python decides without the database, it decides the same
        assert LABELS[code] is mirror


def test_an_ordered_jobs_chain_and_its_parents_hold_it_back(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    first = JobBuilder("n").set_ordered().spawn(conn)
    second = JobBuilder("n").set_ordered().spawn(conn)
    child = JobBuilder("n").set_after([first]).spawn(conn)
    keyed_second = JobBuilder("n").set_ordered().set_job_key("k").spawn(conn)
    conn.commit()
    assert _states(db, [first]) == {"r"}
    assert _states(db, [second, keyed_second]) == {"b"}
    assert _states(db, [child]) == {"w"}
    assert LABELS["b"] is LABELS["w"] is JobState.WAITING
