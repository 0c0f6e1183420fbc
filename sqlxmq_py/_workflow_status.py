"""A workflow's status as status, CLI and dashboard show it: its steps (the graph) with each
one's state, and the list of workflows with their steps counted by state; read from the
``workflow_status`` and ``workflow_list`` rows."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from ._connections import Rows
from ._workflow_spec import ParentFailurePolicy, StepState, UnknownStepError

__all__ = [
    "StepDisplay",
    "WorkflowState",
    "WorkflowStatus",
    "WorkflowStepStatus",
    "WorkflowSummary",
    "read_status",
    "read_summaries",
]

WorkflowState = Literal["running", "completed", "failed", "cancelled"]
StepDisplay = Literal[
    "waiting", "ready", "running", "retrying", "completed", "failed", "cancelled", "skipped"
]


@dataclass(frozen=True, kw_only=True)
class WorkflowStepStatus:
    """One step of a workflow and where it stands."""

    name: str
    state: StepState
    """As recorded by the workflow (see ``sqlxmq_py.workflow``)."""
    display: StepDisplay
    """``state``, with ``pending`` told apart as ``ready``, ``running`` or ``retrying`` (a
    failed attempt with attempts left) by the job's own state."""
    job_id: uuid.UUID
    job_name: str
    parents: tuple[str, ...]
    on_parent_failure: ParentFailurePolicy
    group: str | None
    attempts: int | None
    """Attempts made so far (None once the job is gone and not kept in the history)."""
    held_by: str | None
    """The parent whose failure or cancellation cancelled or skipped this step."""
    result: Any
    """What the step returned (decoded JSON), once it completed."""
    error: str | None
    finished_at: datetime | None


@dataclass(frozen=True, kw_only=True)
class WorkflowStatus:
    """A workflow, its steps (in the order they were added) and where it stands."""

    id: uuid.UUID
    name: str
    created_at: datetime
    cancelled_at: datetime | None
    finished_at: datetime | None
    """When nothing was left to run or retry (its skipped and cancelled steps' parked jobs
    were then cancelled)."""
    expires_at: datetime | None
    steps: list[WorkflowStepStatus] = field(default_factory=list)

    @property
    def state(self) -> WorkflowState:
        """``cancelled`` once cancelled; else ``running`` while a step waits or runs;
        ``failed`` if a step failed or was cancelled; ``completed`` otherwise."""
        if self.cancelled_at is not None:
            return "cancelled"
        if any(s.state in ("waiting", "pending") for s in self.steps):
            return "running"
        if any(s.state in ("failed", "cancelled") for s in self.steps):
            return "failed"
        return "completed"

    def depths(self) -> dict[str, int]:
        """Each step's depth in the graph: 0 for a step without parents, else one more than
        its deepest parent (the column a drawing puts it in)."""
        parents = {s.name: s.parents for s in self.steps}
        depth: dict[str, int] = {}
        for root in parents:
            stack = [root]
            while stack:
                name = stack[-1]
                todo = [p for p in parents.get(name, ()) if p not in depth and p in parents]
                if todo:
                    stack.extend(todo)
                    continue
                stack.pop()
                depth[name] = 1 + max(
                    (depth[p] for p in parents.get(name, ()) if p in depth), default=-1
                )
        return depth

    def step(self, name: str) -> WorkflowStepStatus:
        """The step named ``name``.

        Raises:
            UnknownStepError: the workflow has no such step.
        """
        for s in self.steps:
            if s.name == name:
                return s
        raise UnknownStepError(f"workflow {self.id} has no step named {name!r}")


def _display(state: StepState, job_state: str | None, attempts: int | None) -> StepDisplay:
    if state != "pending":
        return state
    if job_state == "l":
        return "running"
    return "retrying" if attempts else "ready"


def read_status(rows: Rows) -> WorkflowStatus | None:
    """``workflow_status`` rows (the workflow's columns on every row, then one step per row,
    or NULLs for a workflow without steps) as a status; None when there is none."""
    if not rows:
        return None
    wf_id, name, created_at, cancelled_at, finished_at, expires_at = rows[0][:6]
    steps = [
        WorkflowStepStatus(
            name=step,
            state=state,
            display=_display(state, job_state, attempts),
            job_id=job_id,
            job_name=job_name,
            parents=tuple(parents or ()),
            on_parent_failure=policy,
            group=group,
            attempts=attempts,
            held_by=held_by,
            result=None if result is None else json.loads(result),
            error=error,
            finished_at=step_finished,
        )
        for (
            *_, step, state, job_id, job_name, parents, policy, group, attempts, job_state,
            held_by, result, error, step_finished,
        ) in rows
        if step is not None
    ]  # fmt: skip
    return WorkflowStatus(
        id=wf_id,
        name=name,
        created_at=created_at,
        cancelled_at=cancelled_at,
        finished_at=finished_at,
        expires_at=expires_at,
        steps=steps,
    )


@dataclass(frozen=True, kw_only=True)
class WorkflowSummary:
    """A workflow with its steps counted by state (``list_workflows``)."""

    id: uuid.UUID
    name: str
    created_at: datetime
    cancelled_at: datetime | None
    finished_at: datetime | None
    total: int
    waiting: int
    pending: int
    """Released: ready, running or retrying."""
    completed: int
    failed: int
    cancelled: int
    skipped: int

    @property
    def state(self) -> WorkflowState:
        """As :attr:`WorkflowStatus.state`."""
        if self.cancelled_at is not None:
            return "cancelled"
        if self.waiting or self.pending:
            return "running"
        return "failed" if self.failed or self.cancelled else "completed"


def read_summaries(rows: Rows) -> list[WorkflowSummary]:
    """``workflow_list`` rows as summaries."""
    return [
        WorkflowSummary(
            id=wf_id,
            name=name,
            created_at=created_at,
            cancelled_at=cancelled_at,
            finished_at=finished_at,
            total=total,
            waiting=waiting,
            pending=pending,
            completed=completed,
            failed=failed,
            cancelled=cancelled,
            skipped=skipped,
        )
        for (
            wf_id, name, created_at, cancelled_at, finished_at, total, waiting, pending,
            completed, failed, cancelled, skipped,
        ) in rows
    ]  # fmt: skip
