"""What a test spawned: :func:`spawned`, :func:`assert_spawned` and :func:`refute_spawned`.

They read on the caller's connection, so they see the jobs spawned in its own uncommitted
transaction, and decode each payload with the job's declared type: ``assert_spawned(conn,
send, payload=Email(...))`` compares ``Email`` values, and ``found.payload.to`` is typed.
Like the rest of the library, a sync connection (or pool) returns the value and an async one
an awaitable.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeAlias, TypedDict, overload

from typing_extensions import TypeVar, Unpack

from .. import _connections
from .._connections import AnyConnection, AsyncConnectionLike, Rows, SyncConnectionLike
from ..codec import Codec
from ..errors import ConfigurationError, PayloadError
from ..job import NamedJob
from ..states import JOB_STATES, JobState, StateName, to_state
from ._messages import OTHERS, failure
from ._spawned import SPAWNED, SpawnedJob, decode_row

__all__ = ["SpawnFilters", "SpawnedJob", "assert_spawned", "refute_spawned", "spawned"]

T = TypeVar("T", default=Any)
"""The payload type the job declares (``Any``: plain JSON)."""


class _Unset(enum.Enum):
    UNSET = "UNSET"


UNSET = _Unset.UNSET


StateArg: TypeAlias = JobState | StateName | Sequence[JobState | StateName]
"""One state or several, as :class:`~sqlxmq_py.states.JobState` members or their names."""


class SpawnFilters(TypedDict, Generic[T], total=False):
    """The filters of :func:`spawned`, :func:`assert_spawned` and :func:`refute_spawned`; a job
    matches when it matches every one given."""

    channel_name: str
    """The channel it was spawned on."""
    channel_args: str
    """Its channel arguments."""
    job_key: str | None
    """Its key (``set_job_key``)."""
    state: StateArg
    """One state or several (``sqlxmq_py.states``: ``ready``, ``scheduled``, ``retrying``,
    ...). Without it: every queued state; ``completed`` and ``cancelled`` find kept jobs
    (``retain_for``)."""
    payload: T
    """Equal to the decoded payload (an ``Email`` for a job typed ``Email``)."""
    priority: int
    """Its priority."""
    run_at_after: datetime
    """May run at or after this time (``set_delay``, ``set_run_at``)."""
    run_at_before: datetime
    """May run at or before this time."""
    where: Callable[[SpawnedJob[T]], bool]
    """Any other condition (``lambda j: j.payload.to == "ada@example.com"``)."""


@dataclass(frozen=True)
class _Filters:
    channel_name: str | None
    channel_args: str | None
    job_key: str | _Unset | None
    states: tuple[JobState, ...] | None
    payload: object
    priority: int | None
    run_at_after: datetime | None
    run_at_before: datetime | None
    where: Callable[[SpawnedJob[Any]], bool] | None

    def shown(self) -> str:
        parts = [
            f"{'state' if name == 'states' else name}={value!r}"
            for name, value in {**vars(self), "states": _names_of(self.states)}.items()
            if value is not UNSET and (value is not None or name == "job_key")
        ]
        return ", ".join(parts) or "no filters"

    @classmethod
    def of(cls, given: SpawnFilters[Any]) -> _Filters:
        unknown = set(given) - set(SpawnFilters.__annotations__)
        if unknown:
            raise ConfigurationError(f"unknown filters {sorted(unknown)}")
        return cls(
            channel_name=given.get("channel_name"),
            channel_args=given.get("channel_args"),
            job_key=given.get("job_key", UNSET),
            states=_states(given.get("state")),
            payload=given.get("payload", UNSET),
            priority=given.get("priority"),
            run_at_after=given.get("run_at_after"),
            run_at_before=given.get("run_at_before"),
            where=given.get("where"),
        )

    def match(self, job: SpawnedJob[Any]) -> bool:
        checks = (
            self.channel_name is None or job.channel_name == self.channel_name,
            self.channel_args is None or job.channel_args == self.channel_args,
            self.job_key is UNSET or job.job_key == self.job_key,
            self.states is None or job.state in self.states,
            self.priority is None or job.priority == self.priority,
            self.run_at_after is None
            or (job.run_at is not None and job.run_at >= self.run_at_after),
            self.run_at_before is None
            or (job.run_at is not None and job.run_at <= self.run_at_before),
            self.payload is UNSET or _payload_equals(job, self.payload),
        )
        return all(checks) and (self.where is None or self.where(job))


def _names_of(states: tuple[JobState, ...] | None) -> tuple[str, ...] | None:
    return None if states is None else tuple(state.value for state in states)


def _states(state: StateArg | None) -> tuple[JobState, ...] | None:
    if state is None:
        return None
    given: tuple[object, ...] = (state,) if isinstance(state, str) else tuple(state)
    wanted = []
    for one in given:
        found = to_state(one)
        if found is None:
            raise ConfigurationError(f"state must be one of {', '.join(JOB_STATES)}; got {one!r}")
        wanted.append(found)
    return tuple(wanted)


def _names(job: NamedJob[..., Any, Any] | str) -> tuple[list[str], Codec | None, str]:
    if isinstance(job, NamedJob):
        return [job.name, *job.options.aliases], job.payload_codec, job.name
    if isinstance(job, str):
        return [job], None, job
    raise ConfigurationError(f"expected a job (@job) or a job name, got {job!r}")


def _payload_equals(job: SpawnedJob[Any], wanted: object) -> bool:
    try:
        return bool(job.payload == wanted)
    except PayloadError:
        return False  # a payload that does not validate equals no value of its type


def _listed(rows: Rows, codec: Codec | None, filters: _Filters) -> list[SpawnedJob[Any]]:
    jobs = [decode_row(row, codec) for row in rows]
    return [j for j in jobs if filters.match(j)]


def _params(names: list[str], filters: _Filters) -> dict[str, object]:
    kept = filters.states is not None and any(state.kept for state in filters.states)
    return {"names": names, "history": kept}


async def _check_async(
    conn: AsyncConnectionLike, job: NamedJob[..., Any, Any] | str, filters: _Filters, one: bool
) -> SpawnedJob[Any] | None:
    names, codec, name = _names(job)
    rows = await _connections.fetch_async(conn, SPAWNED, _params(names, filters))
    found = _listed(rows, codec, filters)
    if len(found) == (1 if one else 0):
        return found[0] if one else None
    others = await _connections.fetch_async(conn, OTHERS) if not rows else []
    every = [decode_row(row, codec) for row in rows]
    raise AssertionError(failure(name, one, filters.shown(), found, every, others))


def _check_sync(
    conn: SyncConnectionLike, job: NamedJob[..., Any, Any] | str, filters: _Filters, one: bool
) -> SpawnedJob[Any] | None:
    names, codec, name = _names(job)
    rows = _connections.fetch_sync(conn, SPAWNED, _params(names, filters))
    found = _listed(rows, codec, filters)
    if len(found) == (1 if one else 0):
        return found[0] if one else None
    others = _connections.fetch_sync(conn, OTHERS) if not rows else []
    every = [decode_row(row, codec) for row in rows]
    raise AssertionError(failure(name, one, filters.shown(), found, every, others))


@overload
def spawned(
    conn: SyncConnectionLike, job: NamedJob[..., Any, T] | str, **filters: Unpack[SpawnFilters[T]]
) -> list[SpawnedJob[T]]: ...


@overload
def spawned(
    conn: AsyncConnectionLike, job: NamedJob[..., Any, T] | str, **filters: Unpack[SpawnFilters[T]]
) -> Coroutine[Any, Any, list[SpawnedJob[T]]]: ...


def spawned(
    conn: AnyConnection, job: NamedJob[..., Any, Any] | str, **filters: Unpack[SpawnFilters[Any]]
) -> list[SpawnedJob[Any]] | Coroutine[Any, Any, list[SpawnedJob[Any]]]:
    """The jobs of ``job`` (under its name or an alias) that match every filter given
    (:class:`SpawnFilters`), in spawn order, read in the caller's transaction.

    Args:
        conn: a connection (its own uncommitted spawns are seen) or a pool.
        job: a ``@job`` (payloads decoded with its declared type) or a job name (plain JSON).
        **filters: ``channel_name``, ``channel_args``, ``job_key``, ``state``, ``payload``,
            ``priority``, ``run_at_after``, ``run_at_before``, ``where``: see
            :class:`SpawnFilters`.

    Returns:
        The matching jobs (for an async connection, a coroutine of them).

    Raises:
        ConfigurationError: ``job``, a state or a filter's name is not one.
        PayloadError: a payload of the job does not validate as its declared type.
        SchemaError: the database has no sqlxmq_py schema.
    """
    names, codec, _ = _names(job)
    wanted = _Filters.of(filters)
    return _connections.run(
        conn, SPAWNED, _params(names, wanted), lambda rows: _listed(rows, codec, wanted)
    )


async def _one_async(
    conn: AsyncConnectionLike, job: NamedJob[..., Any, Any] | str, filters: _Filters
) -> SpawnedJob[Any]:
    found = await _check_async(conn, job, filters, one=True)
    assert found is not None
    return found


async def _none_async(
    conn: AsyncConnectionLike, job: NamedJob[..., Any, Any] | str, filters: _Filters
) -> None:
    await _check_async(conn, job, filters, one=False)


@overload
def assert_spawned(
    conn: SyncConnectionLike, job: NamedJob[..., Any, T] | str, **filters: Unpack[SpawnFilters[T]]
) -> SpawnedJob[T]: ...


@overload
def assert_spawned(
    conn: AsyncConnectionLike, job: NamedJob[..., Any, T] | str, **filters: Unpack[SpawnFilters[T]]
) -> Coroutine[Any, Any, SpawnedJob[T]]: ...


def assert_spawned(
    conn: AnyConnection, job: NamedJob[..., Any, Any] | str, **filters: Unpack[SpawnFilters[Any]]
) -> SpawnedJob[Any] | Coroutine[Any, Any, SpawnedJob[Any]]:
    """Asserts that exactly one job of ``job`` matches the filters, and returns it.

    Args:
        conn: see :func:`spawned`.
        job: see :func:`spawned`.
        **filters: see :class:`SpawnFilters`.

    Returns:
        The one matching job (for an async connection, a coroutine of it).

    Raises:
        AssertionError: none or several match; the message lists the jobs of that name that
            were spawned (or, when there is none, the names of the jobs that are queued).
        ConfigurationError, PayloadError, SchemaError: as :func:`spawned`.
    """
    wanted = _Filters.of(filters)
    if _connections.is_async(conn):
        return _one_async(conn, job, wanted)
    found = _check_sync(conn, job, wanted, one=True)
    assert found is not None
    return found


@overload
def refute_spawned(
    conn: SyncConnectionLike, job: NamedJob[..., Any, T] | str, **filters: Unpack[SpawnFilters[T]]
) -> None: ...


@overload
def refute_spawned(
    conn: AsyncConnectionLike, job: NamedJob[..., Any, T] | str, **filters: Unpack[SpawnFilters[T]]
) -> Coroutine[Any, Any, None]: ...


def refute_spawned(
    conn: AnyConnection, job: NamedJob[..., Any, Any] | str, **filters: Unpack[SpawnFilters[Any]]
) -> Coroutine[Any, Any, None] | None:
    """Asserts that no job of ``job`` matches the filters.

    Args:
        conn: see :func:`spawned`.
        job: see :func:`spawned`.
        **filters: see :class:`SpawnFilters`.

    Returns:
        Nothing (for an async connection, a coroutine).

    Raises:
        AssertionError: some match; the message lists them.
        ConfigurationError, PayloadError, SchemaError: as :func:`spawned`.
    """
    wanted = _Filters.of(filters)
    if _connections.is_async(conn):
        return _none_async(conn, job, wanted)
    _check_sync(conn, job, wanted, one=False)
    return None
