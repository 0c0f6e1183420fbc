"""The pure half of batches: checking builders, preparing members and callbacks, building the
statements' parameters and reading their rows. The I/O is in ``_batch_io.py``."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import psycopg

from ._connections import Rows
from ._ids import new_job_ids
from .builder import JobBuilder
from .errors import ConfigurationError, SqlxmqError

__all__ = [
    "BATCH_HEADER",
    "BatchError",
    "BatchFinishedError",
    "BatchMember",
    "BatchNotFoundError",
    "BatchStatus",
    "CallbackKind",
    "EmptyBatchError",
    "Prepared",
    "batch_error",
    "check_batch_id",
    "link_params",
    "prepare",
    "read_members",
    "read_status",
]

BATCH_HEADER = "sqlxmq-batch"
"""The header that tells a member or a callback which batch it belongs to."""

CallbackKind = Literal["on_success", "on_finish", "on_discard"]
CALLBACK_KINDS: tuple[CallbackKind, ...] = ("on_success", "on_finish", "on_discard")
"""In the order ``mq_batch_link`` takes their ids."""

MemberState = Literal["pending", "completed", "failed", "cancelled"]


class BatchError(SqlxmqError):
    """Base class of the errors about batches (``sqlxmq_py.batch``)."""

    __module__ = "sqlxmq_py.batch"


class BatchNotFoundError(BatchError, LookupError):
    """No batch has this id (it never existed, its spawn rolled back, or it expired). The
    transaction that asked is aborted: roll it back."""

    __module__ = "sqlxmq_py.batch"


class BatchFinishedError(BatchError):
    """Members were added to a batch that has already finished (its callbacks have run or
    been cancelled). The transaction that asked is aborted: roll it back, and spawn a new
    batch for the new work."""

    __module__ = "sqlxmq_py.batch"


class EmptyBatchError(BatchError, ConfigurationError):
    """A batch would be sealed without a single member, so nothing could ever finish it."""

    __module__ = "sqlxmq_py.batch"


_ERRORS: dict[str, type[BatchError]] = {
    "MQB01": BatchNotFoundError,
    "MQB02": BatchFinishedError,
    "MQB03": EmptyBatchError,
}


def batch_error(exc: psycopg.Error) -> BatchError | None:
    """The typed error for a refusal raised by the batch functions in SQL, else None."""
    kind = _ERRORS.get(exc.sqlstate or "")
    if kind is None:
        return None
    return kind(exc.diag.message_primary or str(exc))


@dataclass(frozen=True, kw_only=True)
class BatchStatus:
    """A batch's counts and where it stands."""

    id: uuid.UUID
    total: int
    """Members added so far."""
    pending: int
    """Members that have not ended (waiting, running, or retrying after a failed attempt)."""
    completed: int
    failed: int
    """Members that failed for good (out of attempts)."""
    cancelled: int
    sealed: bool
    """No member can be missing any more: the batch finishes once none is pending."""
    on_success: uuid.UUID | None
    on_finish: uuid.UUID | None
    on_discard: uuid.UUID | None
    """The callbacks' job ids (see ``sqlxmq_py.admin.job_status`` for their states)."""
    created_at: datetime
    discarded_at: datetime | None
    """When the first member failed for good or was cancelled (``on_discard`` released)."""
    finished_at: datetime | None
    """When the last member ended after the batch was sealed (``on_finish`` released)."""
    expires_at: datetime | None
    """When the finished batch and its members' rows are deleted."""

    @property
    def state(self) -> Literal["open", "running", "finished"]:
        """``open`` (not sealed), ``running`` (sealed, members pending) or ``finished``."""
        if self.finished_at is not None:
            return "finished"
        return "running" if self.sealed else "open"

    @property
    def succeeded(self) -> bool | None:
        """Whether every member completed, once the batch has finished (None before)."""
        if self.finished_at is None:
            return None
        return self.failed == 0 and self.cancelled == 0


@dataclass(frozen=True, kw_only=True)
class BatchMember:
    """One member of a batch and how it ended."""

    job_id: uuid.UUID
    state: MemberState
    result: Any
    """What the member returned (decoded JSON), once it completed."""
    error: str | None
    """Its last error, once it failed for good; the reason, once it was cancelled."""
    finished_at: datetime | None


@dataclass(frozen=True, kw_only=True)
class Prepared:
    """Builders ready for the usual spawn statement, and what links them to their batch."""

    builders: list[JobBuilder[Any]]
    member_ids: list[uuid.UUID]
    callback_ids: dict[CallbackKind, uuid.UUID]


def check_batch_id(batch_id: object) -> uuid.UUID:
    """Refuses what is not a batch id."""
    if not isinstance(batch_id, uuid.UUID):
        raise ConfigurationError(f"batch_id must be a uuid.UUID, got {batch_id!r}")
    return batch_id


def check_members(members: Iterable[JobBuilder[Any]]) -> list[JobBuilder[Any]]:
    """The members as a list, refusing anything but builders without keys or throttles (a key
    could make a member stand for a job that is already queued, outside the batch)."""
    if isinstance(members, JobBuilder):
        raise ConfigurationError("members must be a list of JobBuilder objects, not one builder")
    checked = list(members)
    for b in checked:
        if not isinstance(b, JobBuilder):
            raise ConfigurationError(
                f"batch members must be JobBuilder objects (NamedJob.builder()), got {b!r}"
            )
        if b.to_write().job_key is not None:
            raise ConfigurationError(
                f"batch member {b.name!r} has a job key: members cannot have keys or throttles"
            )
    return checked


def check_callback(kind: CallbackKind, builder: object) -> JobBuilder[Any]:
    """Refuses a callback its batch could not hold back or release once: one with a key,
    parents, a place in an ordered chain or a commit interval."""
    if not isinstance(builder, JobBuilder):
        raise ConfigurationError(f"{kind} takes a JobBuilder (NamedJob.builder()), got {builder!r}")
    job = builder.to_write()
    refused = {
        "a job key or throttle": job.job_key is not None,
        "parents (set_after)": bool(job.after),
        "ordered": job.ordered,
        "a commit interval": job.commit_interval is not None,
    }
    for what, present in refused.items():
        if present:
            raise ConfigurationError(
                f"{kind} callback {builder.name!r} cannot have {what}: its batch releases it"
            )
    return builder


def _with_batch(
    builder: JobBuilder[Any], batch_id: uuid.UUID, job_id: uuid.UUID
) -> tuple[JobBuilder[Any], uuid.UUID]:
    """A copy of ``builder`` carrying the batch's header, and its id (its own, else
    ``job_id``)."""
    chosen = builder.to_write().id or job_id
    new = builder.copy()
    new.set_id(chosen)
    new.set_header(BATCH_HEADER, str(batch_id))
    return new, chosen


def prepare(
    batch_id: uuid.UUID,
    members: Sequence[JobBuilder[Any]],
    callbacks: dict[CallbackKind, JobBuilder[Any]],
    retain_for: timedelta | None,
) -> Prepared:
    """Copies of the builders (the caller's are left as they were) with their ids, the batch's
    header, and, for members not kept in the history (which then could not leave their result
    to the batch), ``retain_for`` (None: ``batch_link`` sets the batch's own)."""
    fresh = iter(new_job_ids(len(members) + len(callbacks)))
    prepared = []
    member_ids: list[uuid.UUID] = []
    for b in members:
        member, member_id = _with_batch(b, batch_id, next(fresh))
        if retain_for is not None and not member.to_write().retain_for:
            member.set_retain_for(retain_for)
        prepared.append(member)
        member_ids.append(member_id)
    callback_ids: dict[CallbackKind, uuid.UUID] = {}
    for kind in CALLBACK_KINDS:
        if kind in callbacks:
            callback, callback_ids[kind] = _with_batch(callbacks[kind], batch_id, next(fresh))
            prepared.append(callback)
    return Prepared(builders=prepared, member_ids=member_ids, callback_ids=callback_ids)


def link_params(
    batch_id: uuid.UUID,
    prepared: Prepared,
    *,
    create: bool,
    retain_for: timedelta | None,
    seal: bool,
) -> dict[str, object]:
    """The parameters of ``batch_link``."""
    return {
        "batch_id": batch_id,
        "create": create,
        "members": prepared.member_ids,
        "callbacks": [prepared.callback_ids.get(kind) for kind in CALLBACK_KINDS],
        "retain_for": retain_for,
        "seal": seal,
    }


def read_status(rows: Rows) -> BatchStatus | None:
    """A ``mq_batches`` row as a status; None when there is none."""
    if not rows:
        return None
    (
        batch_id, total, pending, completed, failed, cancelled, sealed, on_success, on_finish,
        on_discard, _retain_for, created_at, discarded_at, finished_at, expires_at,
    ) = rows[0]  # fmt: skip
    return BatchStatus(
        id=batch_id,
        total=total,
        pending=pending,
        completed=completed,
        failed=failed,
        cancelled=cancelled,
        sealed=sealed,
        on_success=on_success,
        on_finish=on_finish,
        on_discard=on_discard,
        created_at=created_at,
        discarded_at=discarded_at,
        finished_at=finished_at,
        expires_at=expires_at,
    )


def read_members(rows: Rows) -> list[BatchMember]:
    """``batch_members`` rows as members."""
    return [
        BatchMember(
            job_id=job_id,
            state=state or "pending",
            result=None if result is None else json.loads(result),
            error=error,
            finished_at=finished_at,
        )
        for job_id, state, result, error, finished_at in rows
    ]
