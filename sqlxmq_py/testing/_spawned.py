"""SpawnedJob: a job as a test sees it in the queue, and the statement that reads it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, NamedTuple, cast

from typing_extensions import TypeVar

from ..codec import Codec
from ..payload import decode_json
from ..states import JobState, state_of

__all__ = ["SPAWNED", "SpawnedJob", "decode_row"]

T = TypeVar("T", default=Any)
"""The payload type the job declares (``Any``: plain JSON)."""

SPAWNED = b"""
SELECT j.id, p.name, j.state::text, j.attempts, j.max_attempts, j.channel_name, j.channel_args,
    j.priority, j.job_key, j.attempt_at, p.payload_json::text, p.payload_bytes, p.last_error,
    p.created_at
FROM mq_payloads AS p JOIN mq_jobs AS j ON j.id = p.id
WHERE p.name = ANY(%(names)s::text[])
UNION ALL
SELECT h.id, h.name, h.state, h.attempts, h.max_attempts, h.channel_name, h.channel_args,
    h.priority, h.job_key, NULL, h.payload_json::text, h.payload_bytes, h.last_error,
    h.created_at
FROM mq_history AS h
WHERE %(history)s::boolean AND h.name = ANY(%(names)s::text[])
ORDER BY 1
"""


@dataclass(frozen=True, kw_only=True)
class SpawnedJob(Generic[T]):
    """A job as the queue holds it; :attr:`payload` decodes it with the job's declared type."""

    id: uuid.UUID
    name: str
    state: JobState
    attempts: int
    """Attempts made so far (0 before the first runs)."""
    max_attempts: int
    channel_name: str
    channel_args: str
    job_key: str | None
    priority: int
    run_at: datetime | None
    """When it may run (ready, scheduled, retrying, waiting, uncommitted); ``None`` for a
    running job, a failed one and a kept (completed or cancelled) one."""
    payload_json: str | None
    """The JSON payload as stored."""
    payload_bytes: bytes | None = field(repr=False)
    last_error: str | None = field(repr=False)
    created_at: datetime = field(repr=False)
    codec: Codec | None = field(repr=False, compare=False)
    """The job's payload codec (``None``: plain JSON)."""

    @property
    def payload(self) -> T:
        """The payload, decoded and validated as the job's declared type, as the job would
        receive it (plain decoded JSON for an untyped job; ``None`` when it has none).

        Returns:
            The decoded payload.

        Raises:
            PayloadError: the stored payload does not validate (the message names the field).
        """
        if self.codec is None:
            return cast(T, decode_json(self.payload_json, job_name=self.name))
        what = f"payload of job {self.id} ({self.name!r})"
        return cast(T, self.codec.decode(self.payload_json, what=what))


class _SpawnedRow(NamedTuple):
    """A row of ``_SPAWNED``: a queued or kept job and its payload."""

    id: uuid.UUID
    name: str
    code: str
    attempts: int
    max_attempts: int
    channel_name: str
    channel_args: str
    priority: int
    job_key: str | None
    attempt_at: datetime | None
    payload_json: str | None
    payload_bytes: bytes | None
    last_error: str | None
    created_at: datetime


def decode_row(row: tuple[Any, ...], codec: Codec | None) -> SpawnedJob[Any]:
    """A row of :data:`SPAWNED` as a job (its payload decoded with ``codec`` when read)."""
    r = _SpawnedRow(*row)
    state = state_of(r.code, r.attempts)
    return SpawnedJob(
        id=r.id,
        name=r.name,
        state=state,
        attempts=r.attempts,
        max_attempts=r.max_attempts,
        channel_name=r.channel_name,
        channel_args=r.channel_args,
        job_key=r.job_key,
        priority=r.priority,
        run_at=None if state in (JobState.RUNNING, JobState.FAILED) else r.attempt_at,
        payload_json=r.payload_json,
        payload_bytes=r.payload_bytes,
        last_error=r.last_error,
        created_at=r.created_at,
        codec=codec,
    )
