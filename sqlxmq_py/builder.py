"""JobBuilder and Checkpoint: the options of one job, validated as they are set.

Both are mutable builders: every setter changes the builder and returns it, so calls chain::

    job_id = example_job.builder().set_channel_name("bar").set_json("John").spawn(conn)
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol, Self, TypeAlias, overload

from . import _connections
from ._connections import AnyConnection, AsyncConnectionLike, Rows, SyncConnectionLike
from ._ids import assign_ids
from ._validate import MAX_RUN_AT, Duration, check_int, check_text, to_timedelta
from .errors import ConfigurationError
from .hooks import spawn_hooks
from .payload import check_raw_json, encode_bytes, encode_json
from .sql import query

__all__ = [
    "COPY_MIN_JOBS",
    "DEFAULT_RETRIES",
    "DEFAULT_RETRY_BACKOFF",
    "Checkpoint",
    "CopyRows",
    "JobBuilder",
    "JobKeyMode",
    "copy_rows",
    "insert_params",
    "insert_statement",
    "run_spawn_hooks",
    "spawned_ids",
]

DEFAULT_RETRIES = 4
DEFAULT_RETRY_BACKOFF = timedelta(seconds=1)
_PRIORITY_BOUND = 2**31 - 1

JobKeyMode: TypeAlias = Literal["replace", "preserve_run_at", "unsafe_dedupe"]
"""What spawning a job whose key is taken by a waiting job does (graphile-worker's modes)."""

_KEY_MODES = ("replace", "preserve_run_at", "unsafe_dedupe")


class _Named(Protocol):
    """A job that can be named as a dead letter (a ``NamedJob``)."""

    @property
    def name(self) -> str: ...

    def builder(self) -> JobBuilder: ...


class JobBuilder:
    """The options of one job to spawn. Get one from ``NamedJob.builder()``.

    Defaults come from the ``@job`` decorator; every setter validates its value at once and
    raises :class:`~sqlxmq_py.ConfigurationError` (or :class:`~sqlxmq_py.PayloadError` for
    payloads) naming what was wrong.
    """

    def __init__(
        self,
        name: str,
        *,
        channel_name: str = "",
        retries: int = DEFAULT_RETRIES,
        retry_backoff: Duration = DEFAULT_RETRY_BACKOFF,
        ordered: bool = False,
        lease: Duration | None = None,
        priority: int = 0,
        retain_for: Duration | None = None,
        dead_letter: str | _Named | None = None,
    ) -> None:
        """Starts a builder for the job called ``name`` with the given defaults."""
        self._name = check_text("name", name)
        self._id: uuid.UUID | None = None
        self._channel_args = ""
        self._delay = timedelta(0)
        self._run_at: datetime | None = None
        self._commit_interval: timedelta | None = None
        self._payload_json: str | None = None
        self._payload_bytes: bytes | None = None
        self._job_key: str | None = None
        self._job_key_mode: JobKeyMode = "replace"
        self._throttle: timedelta | None = None
        self._after: tuple[uuid.UUID, ...] = ()
        self._run_after_failed_parents = False
        self._headers: dict[str, str] | None = None  # made on the first set_header
        self.set_channel_name(channel_name)
        self.set_retries(retries)
        self.set_retry_backoff(retry_backoff)
        self.set_ordered(ordered)
        self.set_lease(lease)
        self.set_priority(priority)
        self.set_retain_for(retain_for)
        self.set_dead_letter(dead_letter)

    @property
    def name(self) -> str:
        """The registered name of the job this builder spawns."""
        return self._name

    def copy(self) -> JobBuilder:
        """A new builder with the same options (but not the id set with :meth:`set_id`)."""
        new = object.__new__(JobBuilder)
        new.__dict__.update(self.__dict__)  # one C-level copy: NamedJob.builder() is hot
        new._id = None
        if self._headers:  # the rest is immutable, shared with the copy
            new._headers = dict(self._headers)
        return new

    def set_id(self, job_id: uuid.UUID) -> Self:
        """Uses this id instead of a new one (spawning the same id twice is an error)."""
        if not isinstance(job_id, uuid.UUID):
            raise ConfigurationError(f"id must be a uuid.UUID, got {job_id!r}")
        self._id = job_id
        return self

    def set_channel_name(self, channel_name: str) -> Self:
        """Sets the channel (default from ``@job``, else ``""``). Any length and characters."""
        self._channel_name = check_text("channel_name", channel_name)
        return self

    def set_channel_args(self, channel_args: str) -> Self:
        """Sets the channel arguments (default ``""``).

        Jobs with equal (channel name, channel args) form a group: the unit of fairness and of
        ordering. Runners subscribe to channel names; args never filter.
        """
        self._channel_args = check_text("channel_args", channel_args)
        return self

    def set_json(self, value: object) -> Self:
        """Sets the JSON payload to ``value`` encoded as JSON (no NaN or Infinity)."""
        self._payload_json = encode_json(value)
        return self

    def set_raw_json(self, raw_json: str) -> Self:
        """Sets the JSON payload to this JSON text, stored exactly as given."""
        self._payload_json = check_raw_json(raw_json)
        return self

    def set_raw_bytes(self, raw_bytes: bytes | bytearray | memoryview | None) -> Self:
        """Sets (or, with ``None``, removes) the binary payload; a job may have both kinds."""
        self._payload_bytes = None if raw_bytes is None else encode_bytes(raw_bytes)
        return self

    def set_delay(self, delay: Duration) -> Self:
        """Runs the job no earlier than ``delay`` after now (the database's clock).

        Replaces a time set with :meth:`set_run_at`.
        """
        self._delay = to_timedelta("delay", delay)
        self._run_at = None
        return self

    def set_run_at(self, run_at: datetime) -> Self:
        """Runs the job no earlier than ``run_at``, a timezone-aware datetime (naive ones are
        refused: their meaning depends on the machine). Replaces a delay."""
        if not isinstance(run_at, datetime):
            raise ConfigurationError(f"run_at must be a datetime, got {run_at!r}")
        if run_at.tzinfo is None or run_at.utcoffset() is None:
            raise ConfigurationError(
                f"run_at must be timezone-aware (e.g. datetime.now(timezone.utc)), got {run_at!r}"
            )
        if run_at >= MAX_RUN_AT:
            raise ConfigurationError(f"run_at must be before {MAX_RUN_AT.date()}, got {run_at!r}")
        self._run_at = run_at
        self._delay = timedelta(0)
        return self

    def set_job_key(
        self,
        job_key: str | None,
        mode: JobKeyMode = "replace",
        *,
        throttle: Duration | None = None,
    ) -> Self:
        """Gives the job a key, unique among unfinished jobs.

        If an unfinished job already has the key, ``mode`` says what happens, and ``spawn``
        returns the id of the job that stands for this one:

        - ``"replace"`` (the default): a waiting job gets this job's payload, run time and
          options (a failed one also a fresh set of attempts);
        - ``"preserve_run_at"``: the same, but it keeps its run time;
        - ``"unsafe_dedupe"``: the existing job is left untouched, even a running one.

        With ``replace`` and ``preserve_run_at``, a running job (or one its spawner has not yet
        committed) is never changed: it gives up the key and a new job is spawned. With
        ``throttle``, at most one job per key is spawned per window, finished jobs included; a
        spawn inside the window returns the id of the window's job.
        """
        if job_key is not None:
            check_text("job_key", job_key)
        if mode not in _KEY_MODES:
            raise ConfigurationError(f"mode must be one of {', '.join(_KEY_MODES)}, got {mode!r}")
        self._job_key = job_key
        self._job_key_mode = mode
        self._throttle = (
            None if throttle is None else to_timedelta("throttle", throttle, allow_zero=False)
        )
        if self._throttle is not None and job_key is None:
            raise ConfigurationError("throttle needs a job_key: the window is per key")
        return self

    def set_after(
        self, job_ids: Iterable[uuid.UUID], *, run_after_failed_parents: bool = False
    ) -> Self:
        """Runs the job only after all these jobs completed (a continuation).

        If one of them fails for good or is cancelled, this job is cancelled, unless
        ``run_after_failed_parents`` is true (then it runs once they have all finished either
        way). A parent no longer in the queue counts as completed, unless it was cancelled.
        """
        ids = list(job_ids)
        for job_id in ids:
            if not isinstance(job_id, uuid.UUID):
                raise ConfigurationError(f"after takes uuid.UUID job ids, got {job_id!r}")
        if not isinstance(run_after_failed_parents, bool):
            raise ConfigurationError(
                f"run_after_failed_parents must be a bool, got {run_after_failed_parents!r}"
            )
        self._after = tuple(ids)
        self._run_after_failed_parents = run_after_failed_parents
        return self

    def set_header(self, name: str, value: str) -> Self:
        """Attaches a string header to the job (``current_job.headers`` at run time), e.g. a
        trace context; headers are kept in the history with the job."""
        if self._headers is None:
            self._headers = {}
        self._headers[check_text("header name", name)] = check_text("header value", value)
        return self

    @property
    def headers(self) -> dict[str, str]:
        """The headers set so far (a copy)."""
        return dict(self._headers or {})

    def set_retain_for(self, retain_for: Duration | None) -> Self:
        """Keeps the finished job (with its result) in the history for this long; ``None``
        uses the runner's default (by default, not kept)."""
        self._retain_for = None if retain_for is None else to_timedelta("retain_for", retain_for)
        return self

    def set_dead_letter(self, dead_letter: str | _Named | None) -> Self:
        """When the job fails for good, spawns this job (a ``NamedJob`` or a job name) with the
        original payload and the error: ``{"job_id", "job_name", "channel_name",
        "channel_args", "attempts", "error", "payload"}``, and the original binary payload."""
        if dead_letter is None or isinstance(dead_letter, str):
            name = None if dead_letter is None else check_text("dead_letter", dead_letter)
            self._dead_letter, self._dead_letter_channel = name, None
        elif callable(getattr(dead_letter, "builder", None)):
            template = dead_letter.builder()
            self._dead_letter, self._dead_letter_channel = template.name, template._channel_name
        else:
            raise ConfigurationError(
                f"dead_letter must be a job or a job name, got {dead_letter!r}"
            )
        return self

    def set_retries(self, retries: int) -> Self:
        """Sets how many times a failed job is retried (default 4: five attempts in all)."""
        self._retries = check_int("retries", retries, minimum=0, maximum=2**31 - 2)
        return self

    def set_retry_backoff(self, retry_backoff: Duration) -> Self:
        """Sets the wait before the first retry; it doubles with each retry (default 1 s)."""
        self._retry_backoff = to_timedelta("retry_backoff", retry_backoff)
        return self

    def set_ordered(self, ordered: bool = True) -> Self:
        """Runs this job strictly after the earlier ordered jobs of its channel group."""
        if not isinstance(ordered, bool):
            raise ConfigurationError(f"ordered must be a bool, got {ordered!r}")
        self._ordered = ordered
        return self

    def set_commit_interval(self, commit_interval: Duration | None) -> Self:
        """Spawns the job uncommitted: it runs only after ``commit()``, and is discarded if
        ``commit_interval`` passes first. ``None`` (the default) spawns it committed."""
        self._commit_interval = (
            None
            if commit_interval is None
            else to_timedelta("commit_interval", commit_interval, allow_zero=False)
        )
        return self

    def set_priority(self, priority: int) -> Self:
        """Within its channel group, a job with higher priority runs first (default 0)."""
        self._priority = check_int(
            "priority", priority, minimum=-_PRIORITY_BOUND, maximum=_PRIORITY_BOUND
        )
        return self

    def set_lease(self, lease: Duration | None) -> Self:
        """Sets how long a runner holds the job before another may take it, unless renewed;
        ``None`` uses the runner's default (30 s)."""
        self._lease = None if lease is None else to_timedelta("lease", lease, allow_zero=False)
        return self

    @overload
    def spawn(self, conn: SyncConnectionLike) -> uuid.UUID: ...

    @overload
    def spawn(self, conn: AsyncConnectionLike) -> Coroutine[Any, Any, uuid.UUID]: ...

    def spawn(self, conn: AnyConnection) -> uuid.UUID | Coroutine[Any, Any, uuid.UUID]:
        """Spawns the job in the caller's transaction and returns its id.

        ``conn`` is a sync connection or pool (returns the id) or an async one (returns an
        awaitable). The transaction is not committed here: a rollback removes the job.
        """
        statement, params, interpret = insert_statement([self])
        return _connections.run(conn, statement, params, lambda rows: interpret(rows)[0])


def _is_plain(builder: JobBuilder) -> bool:
    """No key, no dependencies, not ordered: one plain statement inserts it."""
    return builder._job_key is None and not builder._after and not builder._ordered


def run_spawn_hooks(builders: Sequence[JobBuilder]) -> None:
    """Lets the spawn hooks (tracing, say) see and amend each builder before it is written."""
    for hook in spawn_hooks():
        for builder in builders:
            hook(builder)


def insert_statement(
    builders: Sequence[JobBuilder], *, hooks: bool = True
) -> tuple[bytes, dict[str, object], Callable[[Rows], list[uuid.UUID]]]:
    """The statement that spawns ``builders``, its parameters, and how to read the ids.

    Plain jobs (no key, dependencies or ordering: the common case) take one plain SQL statement,
    with scalar parameters for a single job; the others go through ``mq_insert``. ``hooks``:
    run the spawn hooks first (False when the caller already has).
    """
    if hooks:
        run_spawn_hooks(builders)
    if not all(_is_plain(b) for b in builders):
        return query("insert"), insert_params(builders), spawned_ids
    ids = assign_ids(builders)
    if len(builders) == 1:
        (b,) = builders
        one = {
            "id": ids[0],
            "name": b._name,
            "channel_name": b._channel_name,
            "channel_args": b._channel_args,
            "payload_json": b._payload_json,
            "payload_bytes": b._payload_bytes,
            "delay": b._delay,
            "run_at": b._run_at,
            "max_attempts": b._retries + 1,
            "retry_backoff": b._retry_backoff,
            "lease": b._lease,
            "commit_interval": b._commit_interval,
            "priority": b._priority,
            "retain_for": b._retain_for,
            "dead_letter": b._dead_letter,
            "dead_letter_channel": b._dead_letter_channel,
            "headers": json.dumps(b._headers) if b._headers else None,
        }
        return query("insert_one"), one, lambda _rows: ids
    many: dict[str, object] = {
        "ids": ids,
        "names": [b._name for b in builders],
        "channel_names": [b._channel_name for b in builders],
        "channel_args": [b._channel_args for b in builders],
        "payload_json": [b._payload_json for b in builders],
        "payload_bytes": [b._payload_bytes for b in builders],
        "delays": [b._delay for b in builders],
        "run_ats": [b._run_at for b in builders],
        "max_attempts": [b._retries + 1 for b in builders],
        "retry_backoffs": [b._retry_backoff for b in builders],
        "leases": [b._lease for b in builders],
        "commit_intervals": [b._commit_interval for b in builders],
        "priorities": [b._priority for b in builders],
        "retain_fors": [b._retain_for for b in builders],
        "dead_letters": [b._dead_letter for b in builders],
        "dead_letter_channels": [b._dead_letter_channel for b in builders],
        "headers": [json.dumps(b._headers) if b._headers else None for b in builders],
    }
    return query("insert_plain"), many, lambda _rows: ids


COPY_MIN_JOBS = 1000
"""From this many jobs, ``spawn_many`` writes plain jobs that may run at once with ``COPY``
(payloads, then jobs, then one wake-up): about twice the rate of one ``INSERT``."""

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

COPY_JOB_TYPES = ["uuid", "text", "text", "bytea", "int4", "int4", "interval"]
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
        (job_id, b._channel_name, b._channel_args, b"r", b._priority, b._retries + 1, b._lease)
        for job_id, b in zip(ids, builders, strict=True)
    ]
    return CopyRows(ids, payloads, jobs, sorted({b._channel_name for b in builders}))


def insert_params(builders: Sequence[JobBuilder]) -> dict[str, object]:
    """Builds the parameters of the ``insert`` statement (``mq_insert``): one array per column,
    in job order (dependencies as edges: the child's 1-based position and the parent's id)."""
    dep_positions = [pos for pos, b in enumerate(builders, 1) for _ in b._after]
    dep_parents = [parent for b in builders for parent in b._after]
    return {
        "ids": assign_ids(builders),
        "names": [b._name for b in builders],
        "channel_names": [b._channel_name for b in builders],
        "channel_args": [b._channel_args for b in builders],
        "payload_json": [b._payload_json for b in builders],
        "payload_bytes": [b._payload_bytes for b in builders],
        "delays": [b._delay for b in builders],
        "run_ats": [b._run_at for b in builders],
        "max_attempts": [b._retries + 1 for b in builders],
        "retry_backoffs": [b._retry_backoff for b in builders],
        "leases": [b._lease for b in builders],
        "ordered": [b._ordered for b in builders],
        "commit_intervals": [b._commit_interval for b in builders],
        "priorities": [b._priority for b in builders],
        "job_keys": [b._job_key for b in builders],
        "job_key_modes": [b._job_key_mode for b in builders],
        "throttles": [b._throttle for b in builders],
        "retain_fors": [b._retain_for for b in builders],
        "dead_letters": [b._dead_letter for b in builders],
        "dead_letter_channels": [b._dead_letter_channel for b in builders],
        "run_after_failed_parents": [b._run_after_failed_parents for b in builders],
        "dep_positions": dep_positions,
        "dep_parents": dep_parents,
        "headers": [json.dumps(b._headers) if b._headers else None for b in builders],
    }


def spawned_ids(rows: Rows) -> list[uuid.UUID]:
    """The ids the ``insert`` statement returned, in job order (an existing job's id where a
    job key or throttle window made it stand for the new one)."""
    return [job_id for _, job_id in rows]


class Checkpoint:
    """What a running job saves for its next attempt: see ``CurrentJob.checkpoint``.

    Unset parts stay as they are: the payload is replaced only when one is set here.
    """

    __slots__ = ("_duration", "_extra_retries", "_payload_bytes", "_payload_json", "_set_bytes")

    def __init__(self) -> None:
        """An empty checkpoint: it changes nothing until options are set."""
        self._duration = timedelta(0)
        self._extra_retries = 0
        self._payload_json: str | None = None
        self._payload_bytes: bytes | None = None
        self._set_bytes = False

    def set_json(self, value: object) -> Self:
        """Replaces the JSON payload with ``value`` encoded as JSON."""
        self._payload_json = encode_json(value)
        return self

    def set_raw_json(self, raw_json: str) -> Self:
        """Replaces the JSON payload with this JSON text."""
        self._payload_json = check_raw_json(raw_json)
        return self

    def set_raw_bytes(self, raw_bytes: bytes | bytearray | memoryview | None) -> Self:
        """Replaces the binary payload (``None`` removes it)."""
        self._payload_bytes = None if raw_bytes is None else encode_bytes(raw_bytes)
        self._set_bytes = True
        return self

    def set_extra_retries(self, extra_retries: int) -> Self:
        """Grants this many more attempts (a job that made progress deserves them)."""
        self._extra_retries = check_int("extra_retries", extra_retries, minimum=0)
        return self

    def set_duration(self, duration: Duration) -> Self:
        """Extends the job's lease to at least ``duration`` from now."""
        self._duration = to_timedelta("duration", duration)
        return self

    def params(self, job_id: uuid.UUID, token: uuid.UUID) -> dict[str, object]:
        """The parameters of the ``checkpoint`` statement for the given lease."""
        return {
            "id": job_id,
            "token": token,
            "extra_retries": self._extra_retries,
            "duration": self._duration,
            "set_json": self._payload_json is not None,
            "payload_json": self._payload_json,
            "set_bytes": self._set_bytes,
            "payload_bytes": self._payload_bytes,
        }
