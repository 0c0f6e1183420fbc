"""The I/O half of workflows: the usual spawn statement and ``workflow_link`` sent together in
one pipeline (one round trip), on the caller's connection and in the caller's transaction, for
a new workflow (``Workflow.spawn``) or steps added to one (:func:`add_steps`)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Coroutine, Iterable, Mapping
from contextlib import nullcontext
from typing import Any, TypeVar, overload

import psycopg
from psycopg.rows import tuple_row
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from . import _connections
from ._connections import (
    AnyConnection,
    AsyncConnectionLike,
    Rows,
    SyncConnectionLike,
    is_async,
    schema_missing,
)
from ._insert import insert_statement
from ._workflow_spec import (
    Prepared,
    Step,
    check_graph,
    check_limits,
    check_workflow_id,
    prepare,
    workflow_error,
)
from .builder import SPAWN_HOOKS
from .errors import ConfigurationError
from .sql import query

__all__ = ["add_steps", "link", "run_checked"]

T = TypeVar("T")
Params = Mapping[str, object]


def _translate(exc: psycopg.Error) -> Exception | None:
    return workflow_error(exc) or schema_missing(exc)


def _link_sync(conn: SyncConnectionLike, prepared: Prepared) -> None:
    if isinstance(conn, ConnectionPool):
        with conn.connection() as pooled:
            _link_sync(pooled, prepared)
            return
    SPAWN_HOOKS.run(prepared.builders)
    statement, insert_params, _ = insert_statement([b.to_write() for b in prepared.builders])
    try:
        # an autocommit connection gets a transaction of its own, so that the jobs and their
        # steps land together; otherwise they join the caller's, which is not committed here
        with (
            conn.transaction() if conn.autocommit else nullcontext(),
            conn.cursor(row_factory=tuple_row) as spawn,
            conn.cursor(row_factory=tuple_row) as linking,
            conn.pipeline(),
        ):
            spawn.execute(statement, insert_params)
            linking.execute(query("workflow_link"), prepared.params)
    except psycopg.Error as exc:
        friendly = _translate(exc)
        if friendly is not None:
            raise friendly from exc
        raise


async def _link_async(conn: AsyncConnectionLike, prepared: Prepared) -> None:
    if isinstance(conn, AsyncConnectionPool):
        async with conn.connection() as pooled:
            await _link_async(pooled, prepared)
            return
    SPAWN_HOOKS.run(prepared.builders)
    statement, insert_params, _ = insert_statement([b.to_write() for b in prepared.builders])
    try:
        async with (
            conn.transaction() if conn.autocommit else nullcontext(),
            conn.cursor(row_factory=tuple_row) as spawn,
            conn.cursor(row_factory=tuple_row) as linking,
            conn.pipeline(),
        ):
            await spawn.execute(statement, insert_params)
            await linking.execute(query("workflow_link"), prepared.params)
    except psycopg.Error as exc:
        friendly = _translate(exc)
        if friendly is not None:
            raise friendly from exc
        raise


async def _then(pending: Coroutine[Any, Any, None], value: T) -> T:
    await pending
    return value


@overload
def link(conn: SyncConnectionLike, prepared: Prepared, value: T) -> T: ...


@overload
def link(conn: AsyncConnectionLike, prepared: Prepared, value: T) -> Coroutine[Any, Any, T]: ...


def link(conn: AnyConnection, prepared: Prepared, value: T) -> T | Coroutine[Any, Any, T]:
    """Spawns the prepared steps' jobs and links them to their workflow; returns ``value``
    (awaitably, on an async connection)."""
    if is_async(conn):
        return _then(_link_async(conn, prepared), value)
    _link_sync(conn, prepared)
    return value


async def _run_async(
    conn: AsyncConnectionLike, statement: bytes, params: Params, interpret: Callable[[Rows], T]
) -> T:
    try:
        return await _connections.run(conn, statement, params, interpret)
    except psycopg.Error as exc:
        friendly = _translate(exc)
        if friendly is not None:
            raise friendly from exc
        raise


@overload
def run_checked(
    conn: SyncConnectionLike, statement: bytes, params: Params, interpret: Callable[[Rows], T]
) -> T: ...


@overload
def run_checked(
    conn: AsyncConnectionLike, statement: bytes, params: Params, interpret: Callable[[Rows], T]
) -> Coroutine[Any, Any, T]: ...


def run_checked(
    conn: AnyConnection, statement: bytes, params: Params, interpret: Callable[[Rows], T]
) -> T | Coroutine[Any, Any, T]:
    """Runs one workflow statement (see ``_connections.run``), turning its refusals into the
    typed errors of ``sqlxmq_py.workflow``."""
    if is_async(conn):
        return _run_async(conn, statement, params, interpret)
    try:
        return _connections.run(conn, statement, params, interpret)
    except psycopg.Error as exc:
        friendly = _translate(exc)
        if friendly is not None:
            raise friendly from exc
        raise


@overload
def add_steps(
    conn: SyncConnectionLike,
    workflow_id: uuid.UUID,
    steps: Iterable[Step],
    *,
    limits: Mapping[str, int] | None = None,
) -> dict[str, uuid.UUID]: ...


@overload
def add_steps(
    conn: AsyncConnectionLike,
    workflow_id: uuid.UUID,
    steps: Iterable[Step],
    *,
    limits: Mapping[str, int] | None = None,
) -> Coroutine[Any, Any, dict[str, uuid.UUID]]: ...


def add_steps(
    conn: AnyConnection,
    workflow_id: uuid.UUID,
    steps: Iterable[Step],
    *,
    limits: Mapping[str, int] | None = None,
) -> dict[str, uuid.UUID] | Coroutine[Any, Any, dict[str, uuid.UUID]]:
    """Adds steps to a workflow that is neither cancelled nor finished, in the caller's
    transaction and in one round trip; their parents may be new steps or steps it already
    has (a parent that has already ended counts as it ended). ``limits`` sets (or replaces)
    groups' ``max_running``. The workflow's row stays locked until that transaction ends, so
    keep it short. Returns each new step's job id, by step name.

    Raises:
        WorkflowNotFoundError: no such workflow.
        WorkflowClosedError: the workflow was cancelled or has finished.
        DuplicateStepError: two steps, new or old, have one name.
        UnknownStepError: a new step runs after a step the workflow does not have.
        WorkflowCycleError: the new steps' dependencies form a cycle.
    """
    checked_id = check_workflow_id(workflow_id)
    checked = list(steps)
    if not checked:
        raise ConfigurationError("add_steps() needs at least one step")
    for s in checked:
        if not isinstance(s, Step):
            raise ConfigurationError(f"add_steps() takes Step objects, got {s!r}")
    check_graph(checked, complete=False)
    prepared = prepare(
        checked_id,
        checked,
        check_limits(limits or {}),
        create=False,
        name="",
        retain_for=None,
    )
    return link(conn, prepared, prepared.step_ids)
