"""JobBuilder: the options of one job, validated as they are set, and the spawn hooks that
see every builder before its job is written (installed with ``hooks.add_spawn_hook``).

A builder is mutable: every setter changes it and returns it, so calls chain::

    job_id = example_job.builder().set_channel_name("bar").set_json("John").spawn(conn)

What it spawns is :meth:`JobBuilder.to_write`, a frozen :class:`~sqlxmq_py.job_to_write.JobToWrite`.
"""

from __future__ import annotations

import uuid
from collections.abc import Coroutine, Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, Protocol, Self, overload

from typing_extensions import TypeVar

from . import _connections
from ._connections import AnyConnection, AsyncConnectionLike, SyncConnectionLike
from ._hook_list import HookList
from ._insert import insert_statement
from ._validate import (
    Duration,
    check_bool,
    check_int,
    check_name,
    check_run_at,
    check_text,
    to_timedelta,
)
from .checkpoint import Checkpoint
from .errors import ConfigurationError
from .job_to_write import JobKeyMode, JobToWrite, check_job_key
from .payload import check_raw_json, encode_bytes, encode_json
from .rate_limit import check_rate_keys

if TYPE_CHECKING:
    from .codec import Codec

T = TypeVar("T", default=Any)
"""The payload type a job declares (``Any``: plain JSON)."""

__all__ = [
    "DEFAULT_RETRIES",
    "DEFAULT_RETRY_BACKOFF",
    "SPAWN_HOOKS",
    "Checkpoint",
    "JobBuilder",
    "JobKeyMode",
]

DEFAULT_RETRIES = 4
DEFAULT_RETRY_BACKOFF = timedelta(seconds=1)
_PRIORITY_BOUND = 2**31 - 1


class _Named(Protocol):
    """A job that can be named as a dead letter (a ``NamedJob``)."""

    @property
    def name(self) -> str: ...

    def builder(self) -> JobBuilder[Any]: ...


class JobBuilder(Generic[T]):
    """The options of one job to spawn. Get one from ``NamedJob.builder()``.

    Defaults come from the ``@job`` decorator; every setter validates its value at once and
    raises :class:`~sqlxmq_py.ConfigurationError` (or :class:`~sqlxmq_py.PayloadError` for
    payloads) naming what was wrong. ``T`` is the payload type the job declares (``Any``: plain
    JSON): :meth:`set_json` accepts only that type.
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
        self._name = check_name("name", name)
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
        self._rate_keys: tuple[str, ...] = ()
        self._codec: Codec | None = None  # a typed job's payload codec (NamedJob.builder)
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

    def copy(self) -> JobBuilder[T]:
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
        self._channel_name = check_name("channel_name", channel_name)
        return self

    def set_channel_args(self, channel_args: str) -> Self:
        """Sets the channel arguments (default ``""``).

        Jobs with equal (channel name, channel args) form a group: the unit of fairness and of
        ordering. Runners subscribe to channel names; args never filter.
        """
        self._channel_args = check_name("channel_args", channel_args)
        return self

    def set_json(self, value: T) -> Self:
        """Sets the payload to ``value`` encoded as JSON: for a typed job, a value of its
        declared type, encoded by that type's rules (dataclasses, datetimes, UUIDs, decimals);
        else any JSON value (no NaN or Infinity).

        Raises:
            PayloadError: the value cannot be encoded (or is not of the declared type).
        """
        codec = self._codec
        self._payload_json = encode_json(value) if codec is None else codec.encode(value)
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
        self._run_at = check_run_at(run_at)
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
        self._job_key, self._job_key_mode, self._throttle = check_job_key(job_key, mode, throttle)
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
        check_bool("run_after_failed_parents", run_after_failed_parents)
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

    def add_rate_key(self, key: str) -> Self:
        """Adds a rate key (e.g. ``"customer:acme"``): the job starts only while the rule of
        each of its keys allows one more start (see :mod:`sqlxmq_py.rate_limit`).

        Raises:
            RateLimitError: the key is empty, longer than 200 bytes or holds ``*``.
        """
        self._rate_keys = check_rate_keys((*self._rate_keys, key))
        return self

    def set_rate_keys(self, keys: Iterable[str]) -> Self:
        """Replaces the rate keys (default from ``@job(rate_keys=...)``; ``[]``: none).

        Raises:
            RateLimitError: a key is invalid, or there are more than 16.
        """
        self._rate_keys = check_rate_keys(keys)
        return self

    @property
    def rate_keys(self) -> tuple[str, ...]:
        """The rate keys set so far."""
        return self._rate_keys

    @property
    def headers(self) -> dict[str, str]:
        """The headers set so far (a copy)."""
        return dict(self._headers or {})

    @property
    def payload_codec(self) -> Codec | None:
        """The codec :meth:`set_json` encodes with (a typed job's); ``None``: plain JSON."""
        return self._codec

    def set_payload_codec(self, codec: Codec | None) -> Self:
        """Encodes the values given to :meth:`set_json` with ``codec`` (``NamedJob.builder``
        sets its job's declared payload type's)."""
        self._codec = codec
        return self

    def to_write(self) -> JobToWrite:
        """The job this builder spawns now, as a frozen value (later setters do not change it)."""
        return JobToWrite._of(
            {
                "id": self._id,
                "name": self._name,
                "channel_name": self._channel_name,
                "channel_args": self._channel_args,
                "payload_json": self._payload_json,
                "payload_bytes": self._payload_bytes,
                "delay": self._delay,
                "run_at": self._run_at,
                "commit_interval": self._commit_interval,
                "max_attempts": self._retries + 1,
                "retry_backoff": self._retry_backoff,
                "lease": self._lease,
                "priority": self._priority,
                "retain_for": self._retain_for,
                "dead_letter": self._dead_letter,
                "dead_letter_channel": self._dead_letter_channel,
                "job_key": self._job_key,
                "job_key_mode": self._job_key_mode,
                "throttle": self._throttle,
                "ordered": self._ordered,
                "after": self._after,
                "run_after_failed_parents": self._run_after_failed_parents,
                "headers": dict(self._headers) if self._headers else None,
                "rate_keys": self._rate_keys,
            }
        )

    def set_retain_for(self, retain_for: Duration | None) -> Self:
        """Keeps the finished job (with its result) in the history for this long; ``None``
        uses the runner's default (by default, not kept)."""
        self._retain_for = None if retain_for is None else to_timedelta("retain_for", retain_for)
        return self

    def set_dead_letter(
        self, dead_letter: str | _Named | None, *, channel_name: str | None = None
    ) -> Self:
        """When the job fails for good, spawns this job (a ``NamedJob`` or a job name) with the
        original payload and the error: ``{"job_id", "job_name", "channel_name",
        "channel_args", "attempts", "error", "payload"}``, and the original binary payload.

        ``channel_name`` is the channel it is spawned on: by default a ``NamedJob``'s own, and
        for a job name the default channel ``""``."""
        if channel_name is not None:
            check_name("channel_name", channel_name)
        if dead_letter is None or isinstance(dead_letter, str):
            name = None if dead_letter is None else check_name("dead_letter", dead_letter)
            self._dead_letter, self._dead_letter_channel = name, channel_name
        elif callable(getattr(dead_letter, "builder", None)):
            template = dead_letter.builder()
            self._dead_letter = template.name
            self._dead_letter_channel = (
                template._channel_name if channel_name is None else channel_name
            )
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
        self._ordered = check_bool("ordered", ordered)
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
        SPAWN_HOOKS.run((self,))
        statement, params, interpret = insert_statement((self.to_write(),))
        return _connections.run(conn, statement, params, lambda rows: interpret(rows)[0])


SPAWN_HOOKS: HookList[JobBuilder[Any]] = HookList()
"""The spawn hooks (``hooks.add_spawn_hook``): every way of spawning runs them once on its
builders (``SPAWN_HOOKS.run``) before it takes their ``to_write()``."""
