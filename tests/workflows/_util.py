"""Shared jobs and helpers of the workflow tests: each step's job runs alone on a channel named
after the step, so that the pull API can settle exactly the step a test names."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Literal

import psycopg

from sqlxmq_py import BlockingCurrentJob, job
from sqlxmq_py.admin import workflow_status
from sqlxmq_py.builder import JobBuilder
from sqlxmq_py.pull import FetchedJob, complete, fail, fetch
from sqlxmq_py.workflow import WorkflowStatus


@job(retries=0)
def step(current_job: BlockingCurrentJob) -> None:
    """A step; the tests settle it with the pull API."""


@dataclass(frozen=True)
class Point:
    """A typed result."""

    x: int
    y: int


@job(retries=0)
async def typed_step(current_job: Any) -> Point:
    """A step declaring a typed result."""
    return Point(x=1, y=2)


def on(name: str, *, retries: int = 0) -> JobBuilder[Any]:
    """A step builder alone on channel ``wf-{name}``."""
    return step.builder().set_channel_name(f"wf-{name}").set_json(name).set_retries(retries)


def ready(conn: psycopg.Connection[Any], name: str) -> bool:
    """Whether the step's job can be fetched now (it is fetched and handed back if so)."""
    row = conn.execute(
        "SELECT count(*) FROM mq_jobs WHERE channel_name = %s AND state IN ('r', 's')",
        (f"wf-{name}",),
    ).fetchone()
    conn.commit()
    assert row is not None
    return bool(row[0])


def lease(conn: psycopg.Connection[Any], name: str) -> FetchedJob:
    """Leases the one job of step ``name`` (committed)."""
    (fetched,) = fetch(conn, [f"wf-{name}"])
    conn.commit()
    return fetched


def settle(
    conn: psycopg.Connection[Any],
    name: str,
    how: Literal["complete", "fail"] = "complete",
    result: object = None,
) -> None:
    """Leases step ``name``'s job and completes it (with ``result``) or fails an attempt of it,
    committed."""
    fetched = lease(conn, name)
    if how == "complete":
        complete(conn, fetched, result)
    else:
        fail(conn, fetched, f"{name} broke", delay=0)
    conn.commit()


def status(conn: psycopg.Connection[Any], workflow_id: uuid.UUID) -> WorkflowStatus:
    """The workflow's status (committed read)."""
    found = workflow_status(conn, workflow_id)
    conn.commit()
    assert found is not None
    return found


def states(conn: psycopg.Connection[Any], workflow_id: uuid.UUID) -> dict[str, str]:
    """Each step's display state, by name."""
    return {s.name: s.display for s in status(conn, workflow_id).steps}
