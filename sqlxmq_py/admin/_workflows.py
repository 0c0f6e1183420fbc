"""Workflows from the operator's side: a workflow's graph with each step's state, cancelling a
whole workflow, retrying a failed step (see :mod:`sqlxmq_py.workflow`)."""

from __future__ import annotations

import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, overload

from .._connections import AnyConnection, AsyncConnectionLike, Rows, SyncConnectionLike
from .._validate import check_int, check_text
from .._workflow_io import run_checked
from .._workflow_spec import check_workflow_id
from .._workflow_status import WorkflowStatus, WorkflowSummary, read_status, read_summaries
from ..sql import query

__all__ = [
    "WorkflowCancelled",
    "cancel_workflow",
    "list_workflows",
    "retry_step",
    "workflow_status",
]


@overload
def workflow_status(conn: SyncConnectionLike, workflow_id: uuid.UUID) -> WorkflowStatus | None: ...


@overload
def workflow_status(
    conn: AsyncConnectionLike, workflow_id: uuid.UUID
) -> Coroutine[Any, Any, WorkflowStatus | None]: ...


def workflow_status(
    conn: AnyConnection, workflow_id: uuid.UUID
) -> WorkflowStatus | Coroutine[Any, Any, WorkflowStatus | None] | None:
    """The workflow with its steps (state, job, attempts, parents, result or error), in the
    order they were added; None if there is no such workflow (or it expired). Readable after
    the steps' jobs left the queue."""
    params = {"workflow_id": check_workflow_id(workflow_id)}
    return run_checked(conn, query("workflow_status"), params, read_status)


@dataclass(frozen=True, kw_only=True)
class WorkflowCancelled:
    """What :func:`cancel_workflow` did."""

    cancelled: int
    """Steps' jobs cancelled at once (waiting, ready, parked or failed)."""
    requested: int
    """Running steps asked to stop (they end as cancelled when they raise, see
    ``current_job.cancelled``)."""


def _cancelled(rows: Rows) -> WorkflowCancelled:
    return WorkflowCancelled(cancelled=int(rows[0][0]), requested=int(rows[0][1]))


@overload
def cancel_workflow(
    conn: SyncConnectionLike, workflow_id: uuid.UUID, reason: str = ...
) -> WorkflowCancelled: ...


@overload
def cancel_workflow(
    conn: AsyncConnectionLike, workflow_id: uuid.UUID, reason: str = ...
) -> Coroutine[Any, Any, WorkflowCancelled]: ...


def cancel_workflow(
    conn: AnyConnection, workflow_id: uuid.UUID, reason: str = "workflow cancelled"
) -> WorkflowCancelled | Coroutine[Any, Any, WorkflowCancelled]:
    """Cancels a whole workflow: no step is released any more; steps not running are cancelled
    at once, running ones are asked to stop. Cancelling twice changes nothing more.

    Raises:
        WorkflowNotFoundError: no such workflow.
    """
    params = {
        "workflow_id": check_workflow_id(workflow_id),
        "reason": check_text("reason", reason),
    }
    return run_checked(conn, query("workflow_cancel"), params, _cancelled)


def _retried(rows: Rows) -> uuid.UUID:
    job_id: uuid.UUID = rows[0][0]
    return job_id


@overload
def retry_step(conn: SyncConnectionLike, workflow_id: uuid.UUID, step: str) -> uuid.UUID: ...


@overload
def retry_step(
    conn: AsyncConnectionLike, workflow_id: uuid.UUID, step: str
) -> Coroutine[Any, Any, uuid.UUID]: ...


def retry_step(
    conn: AnyConnection, workflow_id: uuid.UUID, step: str
) -> uuid.UUID | Coroutine[Any, Any, uuid.UUID]:
    """Runs a step that failed for good again (its attempts counted from zero). The steps it
    cancelled or skipped (directly or through their own parents) wait for it again and run
    once it succeeds; steps that ran meanwhile (``on_parent_failure='run'``) do not run
    again. Returns the step's job id. (Retrying the step's job by any other means does the
    same.)

    Raises:
        WorkflowNotFoundError: no such workflow.
        WorkflowClosedError: the workflow was cancelled.
        UnknownStepError: the workflow has no such step.
        StepNotRetryableError: the step has not failed, or its failed job was purged.
    """
    params = {"workflow_id": check_workflow_id(workflow_id), "step": check_text("step", step)}
    return run_checked(conn, query("workflow_retry"), params, _retried)


@overload
def list_workflows(
    conn: SyncConnectionLike, *, name: str | None = None, limit: int = 50
) -> list[WorkflowSummary]: ...


@overload
def list_workflows(
    conn: AsyncConnectionLike, *, name: str | None = None, limit: int = 50
) -> Coroutine[Any, Any, list[WorkflowSummary]]: ...


def list_workflows(
    conn: AnyConnection, *, name: str | None = None, limit: int = 50
) -> list[WorkflowSummary] | Coroutine[Any, Any, list[WorkflowSummary]]:
    """The newest workflows first (only those called ``name``, if given), at most ``limit``,
    each with its steps counted by state. Finished workflows are listed until they expire."""
    params = {
        "name": None if name is None else check_text("name", name),
        "limit": check_int("limit", limit, minimum=1),
    }
    return run_checked(conn, query("workflow_list"), params, read_summaries)
