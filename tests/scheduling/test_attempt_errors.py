"""Every attempt's error is kept, not only the last (issue 10.6): on the job while it is
queued, in its history once kept, and shown by ``sqlxmq show``, the API and the dashboard."""

from __future__ import annotations

from typing import Any

import psycopg

from sqlxmq_py import CurrentJob, job
from sqlxmq_py.admin import attempt_errors, job_status

from ..helpers import Runner, wait_until


@job(retries=2, backoff=0, retain_for=3600)
async def flaky(current_job: CurrentJob) -> None:
    raise RuntimeError(f"boom {current_job.attempt}\x00")


async def test_every_attempts_error_is_kept_in_order(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], runner: Runner
) -> None:
    job_id = flaky.builder().spawn(conn)
    conn.commit()
    async with runner([flaky]):
        await wait_until(
            lambda: (
                (job_status(db, job_id) or None) is not None
                and job_status(db, job_id).state == "failed"
            )
        )  # type: ignore[union-attr]
    errors = attempt_errors(db, job_id)
    assert [e.attempt for e in errors] == [1, 2, 3]
    assert [e.error.splitlines()[0] for e in errors] == [
        "RuntimeError: boom 1\\x00",
        "RuntimeError: boom 2\\x00",
        "RuntimeError: boom 3\\x00",
    ]
    assert errors[0].at <= errors[1].at <= errors[2].at
    # retried by hand and cancelled: the errors go to the history with it
    from sqlxmq_py.admin import cancel, retry

    assert retry(db, [job_id]) == [job_id]
    assert cancel(db, [job_id]) == {job_id: "cancelled"}
    assert [e.attempt for e in attempt_errors(db, job_id)] == [1, 2, 3]


def test_only_the_last_25_are_kept_each_cut_to_4000_characters(
    db: psycopg.Connection[Any],
) -> None:
    value = db.execute("SELECT NULL::jsonb").fetchone()[0]  # type: ignore[index]
    for attempt in range(1, 31):
        value = db.execute(
            "SELECT mq_add_error(%s::jsonb, %s, %s)",
            (None if value is None else __import__("json").dumps(value), attempt, "x" * 5000),
        ).fetchone()[0]  # type: ignore[index]
    assert [e["attempt"] for e in value] == list(range(6, 31))
    assert {len(e["error"]) for e in value} == {4000}


def test_a_job_that_never_failed_has_no_attempt_errors(conn: psycopg.Connection[Any]) -> None:
    job_id = flaky.builder().spawn(conn)
    assert attempt_errors(conn, job_id) == []
