"""The few facts about a job that the dashboard shows and the admin API does not return: its
payload and headers, its place in an ordered chain, and its pending continuation links.

Every statement the dashboard sends itself is in this module, with bound parameters only. They
are kept in the ``-- name:`` format of ``sqlxmq_py/sql/queries.sql`` so that they can move there.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg.rows import tuple_row
from psycopg_pool import AsyncConnectionPool

__all__ = ["QUERIES", "ChainPosition", "JobDetails", "job_chain", "job_details", "job_links"]

_SQL = """
-- name: web_job_details
-- The payload, headers and spawn options of a queued job, or of a kept one (history).
SELECT p.payload_json::text, octet_length(p.payload_bytes),
    substring(p.payload_bytes FROM 1 FOR 32),
    p.headers::text, p.retry_backoff, j.lease, j.ord_seq IS NOT NULL, p.dead_letter,
    p.retain_for, p.run_after_failed_parents, j.commit_deadline
FROM mq_payloads AS p JOIN mq_jobs AS j ON j.id = p.id
WHERE p.id = %(id)s
UNION ALL
SELECT h.payload_json::text, octet_length(h.payload_bytes),
    substring(h.payload_bytes FROM 1 FOR 32),
    h.headers::text, NULL::interval, NULL::interval, false, NULL::text,
    NULL::interval, false, NULL::timestamptz
FROM mq_history AS h
WHERE h.id = %(id)s
LIMIT 1

-- name: web_job_chain
-- A queued ordered job's place in its chain (channel_name, channel_args): its 1-based position,
-- the chain's length, its head, and its neighbours. Every subquery descends mq_jobs_ordered_idx.
SELECT
    (SELECT count(*) FROM mq_jobs AS e
     WHERE e.channel_name = j.channel_name AND e.channel_args = j.channel_args
       AND e.ord_seq < j.ord_seq) + 1,
    (SELECT count(*) FROM mq_jobs AS e
     WHERE e.channel_name = j.channel_name AND e.channel_args = j.channel_args
       AND e.ord_seq IS NOT NULL),
    (SELECT e.id FROM mq_jobs AS e
     WHERE e.channel_name = j.channel_name AND e.channel_args = j.channel_args
       AND e.ord_seq IS NOT NULL
     ORDER BY e.ord_seq LIMIT 1),
    (SELECT e.id FROM mq_jobs AS e
     WHERE e.channel_name = j.channel_name AND e.channel_args = j.channel_args
       AND e.ord_seq < j.ord_seq
     ORDER BY e.ord_seq DESC LIMIT 1),
    (SELECT e.id FROM mq_jobs AS e
     WHERE e.channel_name = j.channel_name AND e.channel_args = j.channel_args
       AND e.ord_seq > j.ord_seq
     ORDER BY e.ord_seq LIMIT 1)
FROM mq_jobs AS j
WHERE j.id = %(id)s AND j.ord_seq IS NOT NULL

-- name: web_job_parents
-- The parents a continuation still waits for (a parent's row goes when it completes).
SELECT parent_id FROM mq_deps WHERE child_id = %(id)s ORDER BY parent_id LIMIT %(limit)s

-- name: web_job_children
-- The continuations still waiting for this job.
SELECT child_id FROM mq_deps WHERE parent_id = %(id)s ORDER BY child_id LIMIT %(limit)s
"""


def _parse(text: str) -> dict[str, bytes]:
    queries: dict[str, bytes] = {}
    name: str | None = None
    lines: list[str] = []
    for line in [*text.splitlines(), "-- name: end"]:
        if line.startswith("-- name: "):
            if name is not None:
                queries[name] = "\n".join(lines).strip().encode()
            name, lines = line.removeprefix("-- name: ").strip(), []
        elif not line.lstrip().startswith("--"):
            lines.append(line)
    return queries


QUERIES = _parse(_SQL)
"""The dashboard's own statements by name (the ``-- name:`` blocks above)."""

RELATIVES_LIMIT = 100
"""At most this many parents and children are listed on a job page."""


async def _fetch(
    pool: AsyncConnectionPool[Any], name: str, params: dict[str, object]
) -> list[tuple[Any, ...]]:
    async with pool.connection() as conn, conn.cursor(row_factory=tuple_row) as cur:
        await cur.execute(QUERIES[name], params)
        rows: list[tuple[Any, ...]] = await cur.fetchall()
        return rows


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
