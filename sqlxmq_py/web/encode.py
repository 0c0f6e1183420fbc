"""JSON shapes of the HTTP API (pure): the objects that ``openapi.py`` describes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from ..admin import AttemptError, BlockedChain, JobStatus, PurgeResult, QueueCount, StatsBucket
from .queries import ChainPosition, JobDetails

__all__ = [
    "blocked_chain_json",
    "bucket_json",
    "count_json",
    "details_json",
    "iso",
    "purge_json",
    "status_json",
]


def iso(value: datetime | None) -> str | None:
    """An RFC 3339 date-time (always with its offset), or ``None``."""
    return None if value is None else value.isoformat()


def _id(value: uuid.UUID | None) -> str | None:
    return None if value is None else str(value)


def status_json(status: JobStatus) -> dict[str, Any]:
    """A ``JobStatus`` object."""
    return {
        "id": str(status.id),
        "name": status.name,
        "state": status.state,
        "attempts": status.attempts,
        "max_attempts": status.max_attempts,
        "channel_name": status.channel_name,
        "channel_args": status.channel_args,
        "priority": status.priority,
        "job_key": status.job_key,
        "run_at": iso(status.run_at),
        "created_at": iso(status.created_at),
        "finished_at": iso(status.finished_at),
        "last_error": status.last_error,
        "result": status.result,
        "cancel_requested": status.cancel_requested,
    }


def count_json(count: QueueCount) -> dict[str, Any]:
    """A ``QueueCount`` object."""
    return {
        "channel_name": count.channel_name,
        "state": count.state,
        "count": count.count,
        "exact": count.exact,
        "oldest_ready_age_s": count.oldest_ready_age_s,
    }


def bucket_json(bucket: StatsBucket) -> dict[str, Any]:
    """A ``StatsBucket`` object."""
    return {
        "minute": iso(bucket.minute),
        "completed": bucket.completed,
        "retried": bucket.retried,
        "failed": bucket.failed,
    }


def blocked_chain_json(chain: BlockedChain) -> dict[str, Any]:
    """A ``BlockedChain`` object."""
    return {
        "channel_name": chain.channel_name,
        "channel_args": chain.channel_args,
        "head_id": str(chain.head_id),
        "head_name": chain.head_name,
        "error": chain.error,
        "waiting": chain.waiting,
    }


def purge_json(result: PurgeResult) -> dict[str, Any]:
    """A ``PurgeResult`` object."""
    return {"failed": result.failed, "history": result.history}


def _seconds(value: Any) -> float | None:
    return None if value is None else float(value.total_seconds())


def details_json(
    status: JobStatus,
    details: JobDetails | None,
    chain: ChainPosition | None,
    parents: list[uuid.UUID],
    children: list[uuid.UUID],
    errors: list[AttemptError],
) -> dict[str, Any]:
    """A ``JobDetails`` object."""
    return {
        "status": status_json(status),
        "payload_json": None if details is None else details.payload_json,
        "payload_bytes_size": None if details is None else details.payload_bytes_size,
        "headers": {} if details is None else details.headers,
        "ordered": chain is not None or (details is not None and details.ordered),
        "chain": None
        if chain is None
        else {
            "position": chain.position,
            "length": chain.length,
            "head_id": str(chain.head_id),
            "previous_id": _id(chain.previous_id),
            "next_id": _id(chain.next_id),
        },
        "parents": [str(p) for p in parents],
        "children": [str(c) for c in children],
        "retry_backoff_s": None if details is None else _seconds(details.retry_backoff),
        "lease_s": None if details is None else _seconds(details.lease),
        "retain_for_s": None if details is None else _seconds(details.retain_for),
        "dead_letter": None if details is None else details.dead_letter,
        "attempt_errors": [
            {"attempt": e.attempt, "at": e.at.isoformat(), "error": e.error} for e in errors
        ],
    }
