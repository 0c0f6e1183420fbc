"""Readers shared by the scheduling tests."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row


def db_now(db: psycopg.Connection[Any]) -> datetime:
    """The database's clock (the one run times and windows are measured by)."""
    row = db.execute("SELECT clock_timestamp()").fetchone()
    assert row is not None
    return row[0]


def history_row(db: psycopg.Connection[Any], job_id: uuid.UUID) -> dict[str, Any] | None:
    """The job's row in mq_history, or None."""
    with db.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT *, result::text AS result_text, payload_json::text AS payload_text "
            "FROM mq_history WHERE id = %s",
            (job_id,),
        )
        return cur.fetchone()


def history_count(db: psycopg.Connection[Any], where: str = "true") -> int:
    row = db.execute(f"SELECT count(*) FROM mq_history WHERE {where}").fetchone()
    assert row is not None
    return int(row[0])


def state_of(db: psycopg.Connection[Any], job_id: uuid.UUID) -> str | None:
    """The job's one-letter state in mq_jobs, or None if it left the hot table."""
    row = db.execute("SELECT state::text FROM mq_jobs WHERE id = %s", (job_id,)).fetchone()
    return None if row is None else str(row[0])
