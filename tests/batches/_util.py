"""Shared jobs and helpers of the batch tests: members that each have a channel of their own,
so that the pull API can settle exactly the member a test names."""

from __future__ import annotations

import uuid
from typing import Any, Literal

import psycopg

from sqlxmq_py import BlockingCurrentJob, job
from sqlxmq_py.pull import FetchedJob, complete, fail, fetch


@job(retries=0)
def member(current_job: BlockingCurrentJob) -> None:
    """A member; the tests settle it with the pull API."""


@job(retries=0)
def callback(current_job: BlockingCurrentJob) -> None:
    """A callback; the tests look at its row."""


def members(n: int, *, retries: int = 0, prefix: str = "m") -> list[Any]:
    """``n`` member builders, member i alone on channel ``{prefix}{i}``, payload i."""
    return [
        member.builder().set_channel_name(f"{prefix}{i}").set_json(i).set_retries(retries)
        for i in range(n)
    ]


def lease(conn: psycopg.Connection[Any], channel: str) -> FetchedJob:
    """Leases the one job of ``channel`` (committed)."""
    (fetched,) = fetch(conn, [channel])
    conn.commit()
    return fetched


def settle(
    conn: psycopg.Connection[Any],
    channel: str,
    how: Literal["complete", "fail"],
    result: object = None,
) -> str:
    """Leases the job of ``channel`` and completes it (with ``result``) or fails an attempt of
    it, in one committed transaction; returns the pull API's outcome."""
    fetched = lease(conn, channel)
    if how == "complete":
        complete(conn, fetched, result)
        outcome = "completed"
    else:
        outcome = fail(conn, fetched, "broke", delay=0)
    conn.commit()
    return outcome


def callback_state(db: psycopg.Connection[Any], job_id: uuid.UUID | None) -> str:
    """'waiting' (held back), 'released' (ready or scheduled), 'cancelled' (in the history),
    or what else the row says."""
    assert job_id is not None
    row = db.execute("SELECT state::text FROM mq_jobs WHERE id = %s", (job_id,)).fetchone()
    if row is not None:
        return {"w": "waiting", "r": "released", "s": "released"}.get(row[0], row[0])
    row = db.execute("SELECT state FROM mq_history WHERE id = %s", (job_id,)).fetchone()
    return "gone" if row is None else str(row[0])


def callback_states(db: psycopg.Connection[Any], batch_id: uuid.UUID) -> dict[str, str]:
    """Each callback's :func:`callback_state`, by kind."""
    row = db.execute(
        "SELECT on_success, on_finish, on_discard FROM mq_batches WHERE id = %s", (batch_id,)
    ).fetchone()
    assert row is not None
    kinds = ("on_success", "on_finish", "on_discard")
    return {
        kind: callback_state(db, job_id) for kind, job_id in zip(kinds, row, strict=True) if job_id
    }
