"""The reads that the dashboard and the HTTP API share: pages of jobs (through the admin API),
and the few facts about a job that the admin API does not return: its payload and headers, its
place in an ordered chain, its pending continuation links and the runner that runs it; and the
channels that have jobs, for the job list's filter.

The statements are the ``web_*`` entries of ``sqlxmq_py/sql/queries.sql``, with bound parameters
only.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from psycopg.rows import tuple_row
from psycopg_pool import AsyncConnectionPool

from ..admin import JobState, JobStatus, RateWait, list_jobs
from ..sql import QueryName, query

__all__ = [
    "ChainPosition",
    "JobDetails",
    "JobWorker",
    "WorkflowStep",
    "channel_names",
    "job_chain",
    "job_details",
    "job_links",
    "job_worker",
    "job_workflow_step",
    "page_jobs",
    "workflow_rate_waits",
]

RELATIVES_LIMIT = 100
"""At most this many parents and children are listed on a job page."""
CHANNELS_LIMIT = 500
"""At most this many channels are offered by the job list's filter."""


async def _fetch(
    pool: AsyncConnectionPool[Any],
    name: QueryName,
    params: dict[str, object],
    *,
    prepare: bool | None = None,
) -> list[tuple[Any, ...]]:
    async with pool.connection() as conn, conn.cursor(row_factory=tuple_row) as cur:
        await cur.execute(query(name), params, prepare=prepare)
        rows: list[tuple[Any, ...]] = await cur.fetchall()
        return rows


async def channel_names(pool: AsyncConnectionPool[Any]) -> list[str]:
    """The channels that have queued jobs (by name, at most ``CHANNELS_LIMIT``), read from an
    index in a time that does not grow with the number of jobs."""
    rows = await _fetch(pool, "web_channel_names", {"limit": CHANNELS_LIMIT}, prepare=False)
    return [row[0] for row in rows]


@dataclass(frozen=True, kw_only=True)
class JobDetails:
    """What a job carries besides its status."""

    payload_json: str | None
    payload_bytes_size: int | None
    payload_bytes_head: bytes | None
    headers: dict[str, str]
    retry_backoff: timedelta | None
    lease: timedelta | None
    ordered: bool
    dead_letter: str | None
    retain_for: timedelta | None
    run_after_failed_parents: bool
    commit_deadline: datetime | None


async def job_details(pool: AsyncConnectionPool[Any], job_id: uuid.UUID) -> JobDetails | None:
    """The job's payload, headers and options, or ``None`` if it is neither queued nor kept."""
    rows = await _fetch(pool, "web_job_details", {"id": job_id})
    if not rows:
        return None
    (pj, size, head, headers, backoff, lease, ordered, dead, retain, after_failed, deadline) = rows[
        0
    ]
    decoded = json.loads(headers) if headers else {}
    return JobDetails(
        payload_json=pj,
        payload_bytes_size=size,
        payload_bytes_head=None if head is None else bytes(head),
        headers={str(k): str(v) for k, v in decoded.items()} if isinstance(decoded, dict) else {},
        retry_backoff=backoff,
        lease=lease,
        ordered=bool(ordered),
        dead_letter=dead,
        retain_for=retain,
        run_after_failed_parents=bool(after_failed),
        commit_deadline=deadline,
    )


@dataclass(frozen=True, kw_only=True)
class JobWorker:
    """The runner that runs a job now, and since when (by the database's clock)."""

    runner_id: uuid.UUID | None
    """None for a job leased through the pull API (no runner)."""
    host: str | None
    """None (and ``pid`` too) once the runner is no longer announced."""
    pid: int | None
    leased_at: datetime | None
    now: datetime

    @property
    def running_for(self) -> timedelta | None:
        """How long the attempt has been running."""
        return None if self.leased_at is None else self.now - self.leased_at


async def job_worker(pool: AsyncConnectionPool[Any], job_id: uuid.UUID) -> JobWorker | None:
    """Who runs the job now; ``None`` unless it is running."""
    rows = await _fetch(pool, "web_job_worker", {"id": job_id})
    if not rows:
        return None
    runner_id, host, pid, leased_at, now = rows[0]
    return JobWorker(runner_id=runner_id, host=host, pid=pid, leased_at=leased_at, now=now)


@dataclass(frozen=True, kw_only=True)
class ChainPosition:
    """A queued ordered job's place in its chain."""

    position: int
    """1 for the head of the chain."""
    length: int
    head_id: uuid.UUID
    previous_id: uuid.UUID | None
    next_id: uuid.UUID | None


async def job_chain(pool: AsyncConnectionPool[Any], job_id: uuid.UUID) -> ChainPosition | None:
    """The job's place in its ordered chain; ``None`` for unordered or finished jobs."""
    rows = await _fetch(pool, "web_job_chain", {"id": job_id})
    if not rows:
        return None
    position, length, head, previous, following = rows[0]
    return ChainPosition(
        position=position, length=length, head_id=head, previous_id=previous, next_id=following
    )


async def job_links(
    pool: AsyncConnectionPool[Any], job_id: uuid.UUID
) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
    """(parents the job still waits for, continuations still waiting for it)."""
    params = {"id": job_id, "limit": RELATIVES_LIMIT}
    parents = await _fetch(pool, "web_job_parents", params)
    children = await _fetch(pool, "web_job_children", params)
    return [row[0] for row in parents], [row[0] for row in children]


async def page_jobs(
    pool: AsyncConnectionPool[Any],
    *,
    states: list[str] | None,
    channel_name: str | None,
    name: str | None,
    job_key: str | None,
    limit: int,
    before: uuid.UUID | None,
) -> tuple[list[JobStatus], uuid.UUID | None]:
    """One page of jobs, newest first, and the ``before`` of the next page (``None`` on the
    last page)."""
    rows = await list_jobs(
        pool,
        states=None if states is None else cast("list[JobState]", states),
        channel_name=channel_name,
        name=name,
        job_key=job_key,
        limit=limit + 1,  # one more, to know whether a next page exists
        before=before,
    )
    if len(rows) > limit:
        return rows[:limit], rows[limit - 1].id
    return rows, None


@dataclass(frozen=True, kw_only=True)
class WorkflowStep:
    """The workflow step a job is."""

    workflow_id: uuid.UUID
    workflow_name: str
    step: str


async def job_workflow_step(
    pool: AsyncConnectionPool[Any], job_id: uuid.UUID
) -> WorkflowStep | None:
    """The workflow step the job is, if it is one (while its workflow is kept)."""
    rows = await _fetch(pool, "web_job_workflow_step", {"job_id": job_id})
    if not rows:
        return None
    workflow_id, name, step = rows[0]
    return WorkflowStep(workflow_id=workflow_id, workflow_name=name, step=step)


async def workflow_rate_waits(
    pool: AsyncConnectionPool[Any], workflow_id: uuid.UUID
) -> dict[str, list[RateWait]]:
    """By step name: the spent rate keys holding back the workflow's released steps that are
    not running yet, each with when it allows a start again."""
    rows = await _fetch(pool, "web_workflow_rate_waits", {"workflow_id": workflow_id})
    waits: dict[str, list[RateWait]] = {}
    for step, key, until in rows:
        waits.setdefault(step, []).append(RateWait(key=key, until=until))
    return waits
