"""Listing jobs, newest first, each page read from an index."""

from __future__ import annotations

import uuid
from collections.abc import Coroutine, Sequence
from typing import Any, overload

from .. import _connections
from .._connections import AnyConnection, AsyncConnectionLike, SyncConnectionLike
from .._validate import check_int, check_text
from ..errors import ConfigurationError
from ..sql import QueryName, query
from ..states import JOB_STATES, LABELS, JobState, StateName, to_state
from ._status import JobStatus, statuses

__all__ = ["list_jobs", "list_statement"]


_ALL_UUIDS_BELOW = uuid.UUID(int=2**128 - 1)
_ALL_LABELS = frozenset(LABELS)
_HISTORY_STATES = tuple(state for state in JOB_STATES if state.kept)
_RUNNING = JobState.RUNNING.codes


def list_statement(
    states: Sequence[JobState | StateName] | None,
    channel_name: str | None,
    name: str | None,
    job_key: str | None,
    limit: int,
    before: uuid.UUID | None,
) -> tuple[QueryName, dict[str, object]] | None:
    """The statement that serves a ``list_jobs`` call from an index, and its parameters (pure);
    ``None`` when nothing can match.

    The most selective filter set picks the statement: a key (one queued job at most), else a
    name, else a channel, else states; the other filters are checked on the rows it walks.
    """
    if isinstance(states, str):
        raise ConfigurationError("states must be a list of states, not one str")
    wanted = None if states is None else [to_state(s) for s in states]
    if wanted is not None and None in wanted:
        unknown = [s for s, w in zip(states or (), wanted, strict=True) if w is None]
        known = ", ".join(JOB_STATES)
        raise ConfigurationError(f"unknown job states {unknown}; known: {known}")
    for option, value in (("channel_name", channel_name), ("name", name), ("job_key", job_key)):
        if value is not None:
            check_text(option, value)
    if before is not None and not isinstance(before, uuid.UUID):
        raise ConfigurationError(f"before must be a job id (uuid.UUID), got {before!r}")
    checked_limit = check_int("limit", limit, minimum=1, maximum=10_000)
    if before is not None and before.int == 0:
        return None  # no id is lower
    labels = set(_ALL_LABELS)
    history = list(_HISTORY_STATES)
    if wanted is not None:
        labels = {code for state in wanted if state is not None for code in state.codes}
        history = [s for s in _HISTORY_STATES if s in wanted]
    every_state = labels == _ALL_LABELS and len(history) == len(_HISTORY_STATES)
    params: dict[str, object] = {
        # keyset paging: the page holds the jobs with ids up to upto (before, exclusive)
        "upto": _ALL_UUIDS_BELOW if before is None else uuid.UUID(int=before.int - 1),
        "limit": checked_limit,
        "hot": bool(labels),
        "history": bool(history),
        "labels": sorted(labels.difference(_RUNNING)),
        "running": not labels.isdisjoint(_RUNNING),
        "history_states": [state.value for state in history],
        "channel_name": channel_name,
        "name": name,
        "job_key": job_key,
    }
    if job_key is not None or name is not None:
        params["labels"] = sorted(labels)  # these statements check 'l' like any other label
        return ("list_jobs_by_key" if job_key is not None else "list_jobs_by_name"), params
    if channel_name is not None:
        return "list_jobs_by_channel", params
    if not every_state:
        return "list_jobs_by_state", params
    return "list_jobs", params


@overload
def list_jobs(
    conn: SyncConnectionLike,
    *,
    states: Sequence[JobState | StateName] | None = None,
    channel_name: str | None = None,
    name: str | None = None,
    job_key: str | None = None,
    limit: int = 50,
    before: uuid.UUID | None = None,
) -> list[JobStatus]: ...


@overload
def list_jobs(
    conn: AsyncConnectionLike,
    *,
    states: Sequence[JobState | StateName] | None = None,
    channel_name: str | None = None,
    name: str | None = None,
    job_key: str | None = None,
    limit: int = 50,
    before: uuid.UUID | None = None,
) -> Coroutine[Any, Any, list[JobStatus]]: ...


def list_jobs(
    conn: AnyConnection,
    *,
    states: Sequence[JobState | StateName] | None = None,
    channel_name: str | None = None,
    name: str | None = None,
    job_key: str | None = None,
    limit: int = 50,
    before: uuid.UUID | None = None,
) -> list[JobStatus] | Coroutine[Any, Any, list[JobStatus]]:
    """Jobs, newest first, queued and kept; filtered by state, channel, name and key.

    Pages: pass the last id of a page as ``before`` to get the next one. Every page is read
    from an index (migration 0004), so its cost does not grow with the number of jobs.
    """
    statement = list_statement(states, channel_name, name, job_key, limit, before)
    if statement is None:
        return _connections.run(conn, b"SELECT 1 WHERE false", None, statuses)
    name_of_query, params = statement
    return _connections.run(conn, query(name_of_query), params, statuses, prepare=False)
