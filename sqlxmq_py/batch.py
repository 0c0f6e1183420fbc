"""Batches: a group of jobs spawned together, with callbacks that run once when the group is
done.

::

    from sqlxmq_py.batch import Batch, batch_results

    batch = Batch().on_success(report.builder()).on_finish(cleanup.builder())
    spawned = batch.spawn(conn, [resize.builder().set_json(p) for p in photos])

The members and the callbacks are spawned in the caller's transaction, in one round trip. Each
callback is an ordinary job, spawned with the batch and held back until its moment, then
released exactly once (its moment is decided under the batch row's lock, in the transaction
that settles the last member), or cancelled if its moment never comes:

- ``on_success``: the batch finished and every member completed;
- ``on_finish``: the batch finished, whatever its members' outcomes;
- ``on_discard``: a member failed for good (out of attempts) or was cancelled, at the first
  one.

A batch finishes once it is sealed and no member is pending. ``spawn`` seals it (pass
``seal=False`` to keep it open, :func:`add` members, then :func:`seal` it). Members can be
added while it runs, until it finishes; a member that fails an attempt and has attempts left is
still pending. Members and callbacks carry the header ``sqlxmq-batch`` (see
:func:`batch_id_of`); callbacks read the counts with :func:`batch_status` and the members'
results with :func:`batch_results`.
"""

from __future__ import annotations

import uuid
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal, Protocol, overload

from ._batch_io import link_async, link_sync, run_checked
from ._batch_spec import (
    BATCH_HEADER,
    BatchError,
    BatchFinishedError,
    BatchMember,
    BatchNotFoundError,
    BatchStatus,
    CallbackKind,
    EmptyBatchError,
    Prepared,
    check_batch_id,
    check_callback,
    check_members,
    link_params,
    prepare,
    read_members,
    read_status,
)
from ._connections import AnyConnection, AsyncConnectionLike, Rows, SyncConnectionLike, is_async
from ._ids import new_job_ids
from ._validate import Duration, check_text, to_timedelta
from .builder import JobBuilder
from .errors import ConfigurationError
from .sql import query

__all__ = [
    "BATCH_HEADER",
    "DEFAULT_RETAIN_FOR",
    "Batch",
    "BatchError",
    "BatchFinishedError",
    "BatchMember",
    "BatchNotFoundError",
    "BatchStatus",
    "EmptyBatchError",
    "MemberFilter",
    "SpawnedBatch",
    "add",
    "batch_id_of",
    "batch_results",
    "batch_status",
    "cancel_batch",
    "seal",
]

DEFAULT_RETAIN_FOR = timedelta(days=7)
"""How long a finished batch (its counts and its members' results) is kept by default."""


@dataclass(frozen=True, kw_only=True)
class SpawnedBatch:
    """What :meth:`Batch.spawn` and :func:`add` return."""

    id: uuid.UUID
    """The batch's id."""
    member_ids: list[uuid.UUID]
    """The ids of the members just spawned, in the builders' order."""
    status: BatchStatus
    """The batch's counts as this transaction sees them after the spawn."""


class Batch:
    """The callbacks and options of a batch to spawn. Immutable: each method returns a new
    ``Batch``, so one can be shared and reused.

    Args:
        retain_for: how long the batch, with its members' results, is kept after it finishes
            (7 days by default). Members that are not kept in the history at all
            (``retain_for`` on their builder) are kept this long, so that their results reach
            the batch.
    """

    __slots__ = ("_callbacks", "_retain_for")

    def __init__(self, *, retain_for: Duration = DEFAULT_RETAIN_FOR) -> None:
        """A batch with no callback yet."""
        self._retain_for = to_timedelta("retain_for", retain_for, allow_zero=False)
        self._callbacks: dict[CallbackKind, JobBuilder[Any]] = {}

    @property
    def retain_for(self) -> timedelta:
        """How long the batch is kept after it finishes."""
        return self._retain_for

    @property
    def callbacks(self) -> dict[CallbackKind, JobBuilder[Any]]:
        """The callbacks set so far, by kind."""
        return dict(self._callbacks)

    def __repr__(self) -> str:
        kinds = {kind: b.name for kind, b in self._callbacks.items()}
        return f"Batch(retain_for={self._retain_for!r}, callbacks={kinds!r})"

    def _with(self, kind: CallbackKind, builder: JobBuilder[Any]) -> Batch:
        new = Batch(retain_for=self._retain_for)
        new._callbacks = {**self._callbacks, kind: check_callback(kind, builder).copy()}
        return new

    def on_success(self, builder: JobBuilder[Any]) -> Batch:
        """Spawns ``builder``'s job once every member has completed (after the batch is
        sealed); it is cancelled if some member fails for good or is cancelled instead."""
        return self._with("on_success", builder)

    def on_finish(self, builder: JobBuilder[Any]) -> Batch:
        """Spawns ``builder``'s job once no member is pending (after the batch is sealed),
        whether the members completed, failed or were cancelled."""
        return self._with("on_finish", builder)

    def on_discard(self, builder: JobBuilder[Any]) -> Batch:
        """Spawns ``builder``'s job as soon as a member fails for good or is cancelled (once,
        for the first); it is cancelled if the batch finishes with every member completed."""
        return self._with("on_discard", builder)

    @overload
    def spawn(
        self,
        conn: SyncConnectionLike,
        members: Iterable[JobBuilder[Any]],
        *,
        seal: bool = True,
    ) -> SpawnedBatch: ...

    @overload
    def spawn(
        self,
        conn: AsyncConnectionLike,
        members: Iterable[JobBuilder[Any]],
        *,
        seal: bool = True,
    ) -> Coroutine[Any, Any, SpawnedBatch]: ...

    def spawn(
        self,
        conn: AnyConnection,
        members: Iterable[JobBuilder[Any]],
        *,
        seal: bool = True,
    ) -> SpawnedBatch | Coroutine[Any, Any, SpawnedBatch]:
        """Spawns the batch: its members and its callbacks, in the caller's transaction and
        in one round trip (a rollback leaves nothing). The builders given are not changed.

        With ``seal=False`` the batch stays open: it cannot finish until :func:`seal` (add
        members with :func:`add`); it may then have no member yet.

        Raises:
            EmptyBatchError: no member, and ``seal`` is true.
            ConfigurationError: a member has a job key or throttle.
        """
        checked = check_members(members)
        if not isinstance(seal, bool):
            raise ConfigurationError(f"seal must be a bool, got {seal!r}")
        if not checked and seal:
            raise EmptyBatchError(
                "a batch needs at least one member (or seal=False, then add() and seal())"
            )
        (batch_id,) = new_job_ids(1)
        prepared = prepare(batch_id, checked, self._callbacks, self._retain_for)
        params = link_params(
            batch_id, prepared, create=True, retain_for=self._retain_for, seal=seal
        )
        return _link(conn, prepared.member_ids, prepared, params)


def _spawned(member_ids: list[uuid.UUID], status: BatchStatus) -> SpawnedBatch:
    return SpawnedBatch(id=status.id, member_ids=member_ids, status=status)


async def _spawned_async(
    member_ids: list[uuid.UUID], pending: Coroutine[Any, Any, BatchStatus]
) -> SpawnedBatch:
    return _spawned(member_ids, await pending)


def _link(
    conn: AnyConnection,
    member_ids: list[uuid.UUID],
    prepared: Prepared,
    params: dict[str, object],
) -> SpawnedBatch | Coroutine[Any, Any, SpawnedBatch]:
    if is_async(conn):
        return _spawned_async(member_ids, link_async(conn, prepared, params))
    return _spawned(member_ids, link_sync(conn, prepared, params))


@overload
def add(
    conn: SyncConnectionLike, batch_id: uuid.UUID, members: Iterable[JobBuilder[Any]]
) -> SpawnedBatch: ...


@overload
def add(
    conn: AsyncConnectionLike, batch_id: uuid.UUID, members: Iterable[JobBuilder[Any]]
) -> Coroutine[Any, Any, SpawnedBatch]: ...


def add(
    conn: AnyConnection, batch_id: uuid.UUID, members: Iterable[JobBuilder[Any]]
) -> SpawnedBatch | Coroutine[Any, Any, SpawnedBatch]:
    """Spawns more members into a batch that has not finished (open, or sealed with members
    still pending: a member may add work to its own batch), in the caller's transaction and
    in one round trip. The batch's row stays locked until that transaction ends, so keep it
    short: members of this batch that end meanwhile wait for it to be counted.

    Raises:
        BatchNotFoundError: no such batch.
        BatchFinishedError: the batch has finished.
        EmptyBatchError: no member given.
    """
    checked_id = check_batch_id(batch_id)
    checked = check_members(members)
    if not checked:
        raise EmptyBatchError("add() needs at least one member")
    prepared = prepare(checked_id, checked, {}, None)
    params = link_params(checked_id, prepared, create=False, retain_for=None, seal=False)
    return _link(conn, prepared.member_ids, prepared, params)


def _status(rows: Rows) -> BatchStatus:
    status = read_status(rows)
    assert status is not None  # the statement returns the batch or raises
    return status


@overload
def seal(conn: SyncConnectionLike, batch_id: uuid.UUID) -> BatchStatus: ...


@overload
def seal(conn: AsyncConnectionLike, batch_id: uuid.UUID) -> Coroutine[Any, Any, BatchStatus]: ...


def seal(
    conn: AnyConnection, batch_id: uuid.UUID
) -> BatchStatus | Coroutine[Any, Any, BatchStatus]:
    """Seals a batch spawned with ``seal=False``: it finishes once no member is pending (in
    this transaction, if none is). Sealing a sealed batch changes nothing.

    Raises:
        BatchNotFoundError: no such batch.
        EmptyBatchError: the batch has no member.
    """
    params = {"batch_id": check_batch_id(batch_id)}
    return run_checked(conn, query("batch_seal"), params, _status)


@overload
def batch_status(conn: SyncConnectionLike, batch_id: uuid.UUID) -> BatchStatus | None: ...


@overload
def batch_status(
    conn: AsyncConnectionLike, batch_id: uuid.UUID
) -> Coroutine[Any, Any, BatchStatus | None]: ...


def batch_status(
    conn: AnyConnection, batch_id: uuid.UUID
) -> BatchStatus | Coroutine[Any, Any, BatchStatus | None] | None:
    """The batch's counts and where it stands; None if there is no such batch (or it
    expired)."""
    params = {"batch_id": check_batch_id(batch_id)}
    return run_checked(conn, query("batch_status"), params, read_status)


MemberFilter = Literal["pending", "completed", "failed", "cancelled"]


def _member_params(batch_id: uuid.UUID, state: MemberFilter | None) -> dict[str, object]:
    if state not in (None, "pending", "completed", "failed", "cancelled"):
        raise ConfigurationError(
            f"state must be None, 'pending', 'completed', 'failed' or 'cancelled', got {state!r}"
        )
    return {"batch_id": check_batch_id(batch_id), "state": state}


@overload
def batch_results(
    conn: SyncConnectionLike, batch_id: uuid.UUID, *, state: MemberFilter | None = None
) -> list[BatchMember]: ...


@overload
def batch_results(
    conn: AsyncConnectionLike, batch_id: uuid.UUID, *, state: MemberFilter | None = None
) -> Coroutine[Any, Any, list[BatchMember]]: ...


def batch_results(
    conn: AnyConnection, batch_id: uuid.UUID, *, state: MemberFilter | None = None
) -> list[BatchMember] | Coroutine[Any, Any, list[BatchMember]]:
    """The batch's members in spawn order (those in ``state`` only, if given), each with how
    it ended and its result or error. Empty for an unknown (or expired) batch."""
    params = _member_params(batch_id, state)
    return run_checked(conn, query("batch_members"), params, read_members)


def _cancel_counts(rows: Rows) -> tuple[int, int]:
    return int(rows[0][0]), int(rows[0][1])


@overload
def cancel_batch(
    conn: SyncConnectionLike, batch_id: uuid.UUID, reason: str = ...
) -> tuple[int, int]: ...


@overload
def cancel_batch(
    conn: AsyncConnectionLike, batch_id: uuid.UUID, reason: str = ...
) -> Coroutine[Any, Any, tuple[int, int]]: ...


def cancel_batch(
    conn: AnyConnection, batch_id: uuid.UUID, reason: str = "batch cancelled"
) -> tuple[int, int] | Coroutine[Any, Any, tuple[int, int]]:
    """Seals the batch and cancels its pending members: waiting ones at once, running ones by
    asking their runner to stop (they end as cancelled when it does). Returns how many were
    cancelled and how many were asked to stop. The batch then finishes as any other:
    ``on_discard`` and ``on_finish`` run, ``on_success`` is cancelled (unless every member had
    already completed).

    Raises:
        BatchNotFoundError: no such batch.
        EmptyBatchError: the batch has no member.
    """
    params = {"batch_id": check_batch_id(batch_id), "reason": check_text("reason", reason)}
    return run_checked(conn, query("batch_cancel"), params, _cancel_counts)


class _HasHeaders(Protocol):
    @property
    def headers(self) -> dict[str, str]: ...


def batch_id_of(current_job: _HasHeaders) -> uuid.UUID | None:
    """The batch a running job (``CurrentJob`` or ``BlockingCurrentJob``) is a member or a
    callback of; None if it belongs to none."""
    value = current_job.headers.get(BATCH_HEADER)
    if value is None:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None
