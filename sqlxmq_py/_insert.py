"""How jobs to write become rows: the INSERT statement (and its parameters) or the COPY rows
that spawn a batch of jobs. Pure: the I/O is in ``spawn.py`` and ``JobBuilder.spawn``; every
function takes :class:`~sqlxmq_py.job_to_write.JobToWrite` values, never builders."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import attrgetter

from ._connections import Rows
from ._ids import assign_ids, new_job_ids
from .job_to_write import JobToWrite, initial_state, is_plain
from .sql import query
from .states import JobState

__all__ = [
    "COPY_JOB_TYPES",
    "COPY_MIN_JOBS",
    "COPY_PAYLOAD_TYPES",
    "CopyRows",
    "copy_rows",
    "copy_rows_like",
    "insert_params",
    "insert_statement",
    "jobs_like",
    "spawned_ids",
]


def insert_statement(
    jobs: Sequence[JobToWrite],
) -> tuple[bytes, dict[str, object], Callable[[Rows], list[uuid.UUID]]]:
    """The statement that spawns ``jobs``, its parameters, and how to read the ids (the
    caller has run the spawn hooks on their builders).

    Plain jobs (no key, dependencies or ordering: the common case) take one plain SQL statement,
    with scalar parameters for a single job; the others go through ``mq_insert``.
    """
    if not all(map(is_plain, jobs)):
        if any(j.rate_keys for j in jobs):
            return query("insert_rated"), _rated_params(jobs), spawned_ids
        return query("insert"), insert_params(jobs), spawned_ids
    ids = assign_ids(jobs)
    if len(jobs) == 1:
        (job,) = jobs
        one = {"id": ids[0], **{column: get(job) for column, _, get in _FIELDS}}
        return query("insert_one"), one, lambda _rows: ids
    return query("insert_plain"), _columns(jobs, ids), lambda _rows: ids


COPY_MIN_JOBS = 1000
"""From this many jobs, ``spawn_many`` writes plain jobs that may run at once with ``COPY``
(payloads, then jobs, then one wake-up): about 1.6 times the rate of one ``INSERT`` for 10,000
jobs (115,000 against 71,000 jobs/s on the 2-core test machine, builders not counted)."""

_JSONB_VERSION = b"\x01"  # jsonb's binary format: a version byte, then the JSON text


@dataclass(frozen=True)
class CopyRows:
    """A batch of jobs as rows for ``COPY ... FROM STDIN (FORMAT BINARY)``."""

    ids: list[uuid.UUID]
    payloads: list[tuple[object, ...]]
    """Rows of ``copy_payloads``."""
    jobs: list[tuple[object, ...]]
    """Rows of ``copy_jobs``."""
    channel_names: list[str]
    """The channels to wake."""


COPY_PAYLOAD_TYPES = [
    "uuid", "text", "text", "bytea", "interval", "interval", "text", "text", "bytea"
]  # fmt: skip
"""Binary dumpers for ``copy_payloads``' columns. JSON goes as text and jsonb as its binary
form (bytes), so that psycopg does not encode the already encoded JSON a second time."""

COPY_JOB_TYPES = ["uuid", "text", "text", "bytea", "int4", "int4", "interval", "int4"]
"""Binary dumpers for ``copy_jobs``' columns; the one-byte ``"char"`` state goes as bytes."""


_READY = JobState.READY.codes[0].encode()
"""The code COPY writes: every job it takes starts ready (``initial_state``)."""


def _may_copy(job: JobToWrite) -> bool:
    return initial_state(job) is JobState.READY


def copy_rows(jobs: Sequence[JobToWrite]) -> CopyRows | None:
    """The batch as COPY rows, or None when ``COPY`` does not fit it: fewer than
    :data:`COPY_MIN_JOBS` jobs, or some job is keyed, ordered, has parents, is delayed or
    two-phase (those need the SQL that an ``INSERT`` runs)."""
    if len(jobs) < COPY_MIN_JOBS or not all(map(_may_copy, jobs)):
        return None
    ids = assign_ids(jobs)
    payloads: list[tuple[object, ...]] = [
        (
            job_id,
            j.name,
            j.payload_json,
            j.payload_bytes,
            j.retry_backoff,
            j.retain_for,
            j.dead_letter,
            j.dead_letter_channel,
            _JSONB_VERSION + json.dumps(j.headers).encode() if j.headers else None,
        )
        for job_id, j in zip(ids, jobs, strict=True)
    ]
    rows: list[tuple[object, ...]] = [
        (
            job_id,
            j.channel_name,
            j.channel_args,
            _READY,
            j.priority,
            j.max_attempts,
            j.lease,
            payload_size(j.payload_json, j.payload_bytes),
        )
        for job_id, j in zip(ids, jobs, strict=True)
    ]
    return CopyRows(ids, payloads, rows, sorted({j.channel_name for j in jobs}))


def jobs_like(template: JobToWrite, payloads_json: Sequence[str | None]) -> list[JobToWrite]:
    """One job per JSON payload, each with ``template``'s other options (and a new id)."""
    fields = {**vars(template), "id": None}
    return [JobToWrite._of({**fields, "payload_json": p}) for p in payloads_json]


def copy_rows_like(template: JobToWrite, payloads_json: Sequence[str | None]) -> CopyRows | None:
    """The COPY rows of one job per JSON payload, each with ``template``'s other options,
    built straight from the template (no value per job); ``None`` when ``COPY`` does not fit
    (as for :func:`copy_rows`, or the template has its own id)."""
    if len(payloads_json) < COPY_MIN_JOBS or template.id is not None or not _may_copy(template):
        return None
    t = template
    ids = new_job_ids(len(payloads_json))
    headers = _JSONB_VERSION + json.dumps(t.headers).encode() if t.headers else None
    payloads: list[tuple[object, ...]] = [
        (job_id, t.name, p, t.payload_bytes, t.retry_backoff, t.retain_for, t.dead_letter,
         t.dead_letter_channel, headers)
        for job_id, p in zip(ids, payloads_json, strict=True)
    ]  # fmt: skip
    bytes_size = payload_size(None, t.payload_bytes)
    rows: list[tuple[object, ...]] = [
        (job_id, t.channel_name, t.channel_args, _READY, t.priority, t.max_attempts, t.lease,
         bytes_size + payload_size(p, None))
        for job_id, p in zip(ids, payloads_json, strict=True)
    ]  # fmt: skip
    return CopyRows(ids, payloads, rows, [t.channel_name])


def payload_size(payload_json: str | None, payload_bytes: bytes | None) -> int:
    """The bytes of a job's payloads, as SQL's mq_payload_size counts them."""
    size = 0 if payload_bytes is None else len(payload_bytes)
    if payload_json is not None:
        size += len(payload_json) if payload_json.isascii() else len(payload_json.encode())
    return size


def _headers_json(job: JobToWrite) -> str | None:
    return json.dumps(job.headers) if job.headers else None


_FIELDS: tuple[tuple[str, str, Callable[[JobToWrite], object]], ...] = (
    ("name", "names", attrgetter("name")),
    ("channel_name", "channel_names", attrgetter("channel_name")),
    ("channel_args", "channel_args", attrgetter("channel_args")),
    ("payload_json", "payload_json", attrgetter("payload_json")),
    ("payload_bytes", "payload_bytes", attrgetter("payload_bytes")),
    ("delay", "delays", attrgetter("delay")),
    ("run_at", "run_ats", attrgetter("run_at")),
    ("max_attempts", "max_attempts", attrgetter("max_attempts")),
    ("retry_backoff", "retry_backoffs", attrgetter("retry_backoff")),
    ("lease", "leases", attrgetter("lease")),
    ("commit_interval", "commit_intervals", attrgetter("commit_interval")),
    ("priority", "priorities", attrgetter("priority")),
    ("retain_for", "retain_fors", attrgetter("retain_for")),
    ("dead_letter", "dead_letters", attrgetter("dead_letter")),
    ("dead_letter_channel", "dead_letter_channels", attrgetter("dead_letter_channel")),
    ("headers", "headers", _headers_json),
)
"""The columns every insert statement takes: the parameter's name for one job
(``insert_one``), its name as an array (``insert_plain``, ``insert``), and its value."""


def _columns(jobs: Sequence[JobToWrite], ids: list[uuid.UUID]) -> dict[str, object]:
    """The column arrays that both array statements take, in job order."""
    return {"ids": ids, **{array: [get(j) for j in jobs] for _, array, get in _FIELDS}}


def insert_params(jobs: Sequence[JobToWrite]) -> dict[str, object]:
    """Builds the parameters of the ``insert`` statement (``mq_insert``): one array per column,
    in job order (dependencies as edges: the child's 1-based position and the parent's id)."""
    return {
        **_columns(jobs, assign_ids(jobs)),
        "ordered": [j.ordered for j in jobs],
        "job_keys": [j.job_key for j in jobs],
        "job_key_modes": [j.job_key_mode for j in jobs],
        "throttles": [j.throttle for j in jobs],
        "run_after_failed_parents": [j.run_after_failed_parents for j in jobs],
        "dep_positions": [pos for pos, j in enumerate(jobs, 1) for _ in j.after],
        "dep_parents": [parent for j in jobs for parent in j.after],
    }


def _rated_params(jobs: Sequence[JobToWrite]) -> dict[str, object]:
    """The parameters of ``insert_rated``: those of ``insert``, and the rate keys as pairs (the
    job's 1-based position, a key), as dependencies are."""
    return {
        **insert_params(jobs),
        "rate_positions": [pos for pos, j in enumerate(jobs, 1) for _ in j.rate_keys],
        "rate_keys": [key for j in jobs for key in j.rate_keys],
    }


def spawned_ids(rows: Rows) -> list[uuid.UUID]:
    """The ids the ``insert`` statement returned, in job order (an existing job's id where a
    job key or throttle window made it stand for the new one)."""
    return [job_id for _position, job_id in rows]
