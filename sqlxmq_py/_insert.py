"""How builders become rows: the INSERT statement (and its parameters) or the COPY rows that
spawn a batch of jobs. Pure: the I/O is in ``spawn.py`` and ``JobBuilder.spawn``."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import TYPE_CHECKING

from ._connections import Rows
from ._ids import assign_ids
from .hooks import spawn_hooks
from .sql import query

if TYPE_CHECKING:
    from .builder import JobBuilder

__all__ = [
    "COPY_JOB_TYPES",
    "COPY_MIN_JOBS",
    "COPY_PAYLOAD_TYPES",
    "CopyRows",
    "copy_rows",
    "insert_params",
    "insert_statement",
    "run_spawn_hooks",
    "spawned_ids",
]


def _is_plain(builder: JobBuilder) -> bool:
    """No key, no dependencies, not ordered: one plain statement inserts it."""
    return builder._job_key is None and not builder._after and not builder._ordered


def run_spawn_hooks(builders: Sequence[JobBuilder]) -> None:
    """Lets the spawn hooks (tracing, say) see and amend each builder before it is written.
    Every way of spawning calls it once, before it builds its rows."""
    for hook in spawn_hooks():
        for builder in builders:
            hook(builder)


def insert_statement(
    builders: Sequence[JobBuilder],
) -> tuple[bytes, dict[str, object], Callable[[Rows], list[uuid.UUID]]]:
    """The statement that spawns ``builders``, its parameters, and how to read the ids (the
    caller has run the spawn hooks).

    Plain jobs (no key, dependencies or ordering: the common case) take one plain SQL statement,
    with scalar parameters for a single job; the others go through ``mq_insert``.
    """
    if not all(_is_plain(b) for b in builders):
        return query("insert"), insert_params(builders), spawned_ids
    ids = assign_ids(builders)
    if len(builders) == 1:
        (b,) = builders
        one = {"id": ids[0], **{column: get(b) for column, _, get in _FIELDS}}
        return query("insert_one"), one, lambda _rows: ids
    return query("insert_plain"), _columns(builders, ids), lambda _rows: ids


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


def _may_copy(builder: JobBuilder) -> bool:
    return (
        _is_plain(builder)
        and not builder._delay
        and builder._run_at is None
        and builder._commit_interval is None
    )


def copy_rows(builders: Sequence[JobBuilder]) -> CopyRows | None:
    """The batch as COPY rows, or None when ``COPY`` does not fit it: fewer than
    :data:`COPY_MIN_JOBS` jobs, or some job is keyed, ordered, has parents, is delayed or
    two-phase (those need the SQL that an ``INSERT`` runs)."""
    if len(builders) < COPY_MIN_JOBS or not all(_may_copy(b) for b in builders):
        return None
    ids = assign_ids(builders)
    payloads: list[tuple[object, ...]] = [
        (
            job_id,
            b._name,
            b._payload_json,
            b._payload_bytes,
            b._retry_backoff,
            b._retain_for,
            b._dead_letter,
            b._dead_letter_channel,
            _JSONB_VERSION + json.dumps(b._headers).encode() if b._headers else None,
        )
        for job_id, b in zip(ids, builders, strict=True)
    ]
    jobs: list[tuple[object, ...]] = [
        (
            job_id,
            b._channel_name,
            b._channel_args,
            b"r",
            b._priority,
            b._retries + 1,
            b._lease,
            payload_size(b._payload_json, b._payload_bytes),
        )
        for job_id, b in zip(ids, builders, strict=True)
    ]
    return CopyRows(ids, payloads, jobs, sorted({b._channel_name for b in builders}))


def payload_size(payload_json: str | None, payload_bytes: bytes | None) -> int:
    """The bytes of a job's payloads, as SQL's mq_payload_size counts them."""
    size = 0 if payload_bytes is None else len(payload_bytes)
    if payload_json is not None:
        size += len(payload_json) if payload_json.isascii() else len(payload_json.encode())
    return size


def _max_attempts(builder: JobBuilder) -> int:
    return int(builder._retries) + 1


def _headers_json(builder: JobBuilder) -> str | None:
    return json.dumps(builder._headers) if builder._headers else None


_FIELDS: tuple[tuple[str, str, Callable[[JobBuilder], object]], ...] = (
    ("name", "names", attrgetter("_name")),
    ("channel_name", "channel_names", attrgetter("_channel_name")),
    ("channel_args", "channel_args", attrgetter("_channel_args")),
    ("payload_json", "payload_json", attrgetter("_payload_json")),
    ("payload_bytes", "payload_bytes", attrgetter("_payload_bytes")),
    ("delay", "delays", attrgetter("_delay")),
    ("run_at", "run_ats", attrgetter("_run_at")),
    ("max_attempts", "max_attempts", _max_attempts),
    ("retry_backoff", "retry_backoffs", attrgetter("_retry_backoff")),
    ("lease", "leases", attrgetter("_lease")),
    ("commit_interval", "commit_intervals", attrgetter("_commit_interval")),
    ("priority", "priorities", attrgetter("_priority")),
    ("retain_for", "retain_fors", attrgetter("_retain_for")),
    ("dead_letter", "dead_letters", attrgetter("_dead_letter")),
    ("dead_letter_channel", "dead_letter_channels", attrgetter("_dead_letter_channel")),
    ("headers", "headers", _headers_json),
)
"""The columns every insert statement takes: the parameter's name for one job
(``insert_one``), its name as an array (``insert_plain``, ``insert``), and its value."""


def _columns(builders: Sequence[JobBuilder], ids: list[uuid.UUID]) -> dict[str, object]:
    """The column arrays that both array statements take, in job order."""
    return {"ids": ids, **{array: [get(b) for b in builders] for _, array, get in _FIELDS}}


def insert_params(builders: Sequence[JobBuilder]) -> dict[str, object]:
    """Builds the parameters of the ``insert`` statement (``mq_insert``): one array per column,
    in job order (dependencies as edges: the child's 1-based position and the parent's id)."""
    return {
        **_columns(builders, assign_ids(builders)),
        "ordered": [b._ordered for b in builders],
        "job_keys": [b._job_key for b in builders],
        "job_key_modes": [b._job_key_mode for b in builders],
        "throttles": [b._throttle for b in builders],
        "run_after_failed_parents": [b._run_after_failed_parents for b in builders],
        "dep_positions": [pos for pos, b in enumerate(builders, 1) for _ in b._after],
        "dep_parents": [parent for b in builders for parent in b._after],
    }


def spawned_ids(rows: Rows) -> list[uuid.UUID]:
    """The ids the ``insert`` statement returned, in job order (an existing job's id where a
    job key or throttle window made it stand for the new one)."""
    return [job_id for _position, job_id in rows]
