"""Shared helpers for tests: reading job rows, and waiting for conditions with a deadline."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
from psycopg.rows import dict_row


def lease_params(**overrides: object) -> dict[str, object]:
    """Parameters of the ``lease`` statement: every job, no cursor, 30 s leases, durable."""
    return {
        "channel_names": None,
        "cursor_name": None,
        "cursor_args": None,
        "limit": 10,
        "default_lease": "30 s",
        "excluded": [],
        "durable": True,
        "max_bytes": 2**40,
        **overrides,
    }


def job_row(db: psycopg.Connection[Any], job_id: uuid.UUID) -> dict[str, Any] | None:
    """The job's hot row and payload row joined, or None if it is gone."""
    with db.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT j.*, j.state::text AS state, p.name, p.payload_json::text AS payload_json, "
            "p.payload_bytes, p.retry_backoff, p.last_error, p.created_at "
            "FROM mq_jobs j JOIN mq_payloads p USING (id) WHERE j.id = %s",
            (job_id,),
        )
        return cur.fetchone()


def count_jobs(db: psycopg.Connection[Any], where: str = "true") -> int:
    row = db.execute(f"SELECT count(*) FROM mq_jobs WHERE {where}").fetchone()
    assert row is not None
    return int(row[0])


def payload_count(db: psycopg.Connection[Any]) -> int:
    row = db.execute("SELECT count(*) FROM mq_payloads").fetchone()
    assert row is not None
    return int(row[0])


async def wait_until(
    condition: Callable[[], bool | Awaitable[bool]], timeout: float = 10.0, interval: float = 0.02
) -> None:
    """Waits for a database-side condition that no event announces; fails after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)
