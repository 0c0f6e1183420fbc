"""What the HTTP API takes and answers about workflows, as typed models made from the admin
API's rows (``sqlxmq_py.admin.workflow_status``, ``list_workflows``)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import Field

from ..admin import RateWait, WorkflowCancelled
from ..workflow import WorkflowStatus, WorkflowStepStatus, WorkflowSummary
from .fields import MAX_LIST_LIMIT, Count, JobId, Model, QueryDigits, Text, Timestamp
from .responses import RateWaitResponse

__all__ = [
    "StepPath",
    "StepResponse",
    "StepRetried",
    "WorkflowCancelResponse",
    "WorkflowCounts",
    "WorkflowList",
    "WorkflowListQuery",
    "WorkflowResponse",
    "WorkflowSummaryResponse",
]

WorkflowStateName = Literal["running", "completed", "failed", "cancelled"]
StepStateName = Literal["waiting", "pending", "completed", "failed", "cancelled", "skipped"]
StepDisplayName = Literal[
    "waiting", "ready", "running", "retrying", "completed", "failed", "cancelled", "skipped"
]


class WorkflowListQuery(Model):
    """Which workflows to list, as query parameters."""

    name: Text | None = Field(None, description="Only workflows of this name.")
    limit: Annotated[int, Field(ge=1, le=MAX_LIST_LIMIT), QueryDigits] = Field(
        50, description="How many, newest first."
    )


class StepPath(Model):
    """The step of a workflow named in the path."""

    step: Annotated[str, Field(min_length=1, pattern="^[^\\u0000]+$")] = Field(
        description="The step's name (percent-encoded)."
    )


class WorkflowCounts(Model):
    """A workflow's steps counted by state."""

    total: Count
    waiting: Count = Field(description="Waiting for their parents.")
    pending: Count = Field(description="Released: ready, running or retrying.")
    completed: Count
    failed: Count
    cancelled: Count
    skipped: Count


class WorkflowSummaryResponse(Model):
    """A workflow with its steps counted by state."""

    id: JobId = Field(description="The workflow id.")
    name: str
    state: WorkflowStateName
    created_at: Timestamp
    cancelled_at: Timestamp | None
    finished_at: Timestamp | None = Field(description="When nothing was left to run or retry.")
    counts: WorkflowCounts

    @classmethod
    def of(cls, summary: WorkflowSummary) -> WorkflowSummaryResponse:
        """The answer for an admin ``WorkflowSummary``."""
        counts = {n: getattr(summary, n) for n in WorkflowCounts.model_fields}
        return cls.model_construct(
            id=summary.id,
            name=summary.name,
            state=summary.state,
            created_at=summary.created_at,
            cancelled_at=summary.cancelled_at,
            finished_at=summary.finished_at,
            counts=WorkflowCounts.model_construct(**counts),
        )


class WorkflowList(Model):
    """The newest workflows first."""

    workflows: list[WorkflowSummaryResponse]


class StepResponse(Model):
    """One step of a workflow and where it stands."""

    name: str
    state: StepStateName = Field(description="As the workflow records it.")
    display: StepDisplayName = Field(
        description="state, with pending told apart as ready, running or retrying."
    )
    job_id: JobId = Field(description="The step's job (GET /api/jobs/{id} while it is kept).")
    job_name: str
    parents: list[str]
    on_parent_failure: Literal["cancel", "skip", "run"]
    group: str | None
    attempts: Count | None = Field(description="Attempts so far; null once the job is gone.")
    held_by: str | None = Field(
        description="The parent whose failure or cancellation cancelled or skipped it."
    )
    result: Any = Field(description="What the step returned, once it completed.")
    error: str | None
    finished_at: Timestamp | None
    rate_waits: list[RateWaitResponse] = Field(
        [],
        description="The spent rate keys holding the step back while it waits to start, each "
        "with when it allows a start again.",
    )

    @classmethod
    def of(cls, step: WorkflowStepStatus, waits: list[RateWait] | None = None) -> StepResponse:
        """The answer for an admin ``WorkflowStepStatus`` (and its spent rate keys)."""
        fields = {n: getattr(step, n) for n in cls.model_fields if n != "rate_waits"}
        fields["parents"] = list(step.parents)
        fields["rate_waits"] = [
            RateWaitResponse.model_construct(key=w.key, until=w.until) for w in waits or []
        ]
        return cls.model_construct(**fields)


class WorkflowResponse(Model):
    """A workflow and its steps, in the order they were added."""

    id: JobId = Field(description="The workflow id.")
    name: str
    state: WorkflowStateName
    created_at: Timestamp
    cancelled_at: Timestamp | None
    finished_at: Timestamp | None
    expires_at: Timestamp | None = Field(description="When it is forgotten, once finished.")
    steps: list[StepResponse]

    @classmethod
    def of(
        cls, status: WorkflowStatus, waits: dict[str, list[RateWait]] | None = None
    ) -> WorkflowResponse:
        """The answer for an admin ``WorkflowStatus`` (and its steps' spent rate keys)."""
        waits = waits or {}
        return cls.model_construct(
            id=status.id,
            name=status.name,
            state=status.state,
            created_at=status.created_at,
            cancelled_at=status.cancelled_at,
            finished_at=status.finished_at,
            expires_at=status.expires_at,
            steps=[StepResponse.of(s, waits.get(s.name)) for s in status.steps],
        )


class WorkflowCancelResponse(Model):
    """What cancelling a workflow did."""

    id: JobId = Field(description="The workflow id.")
    cancelled: Count = Field(description="Steps' jobs cancelled at once.")
    requested: Count = Field(description="Running steps asked to stop.")

    @classmethod
    def of(cls, workflow_id: uuid.UUID, done: WorkflowCancelled) -> WorkflowCancelResponse:
        """The answer for an admin ``WorkflowCancelled``."""
        return cls.model_construct(
            id=workflow_id, cancelled=done.cancelled, requested=done.requested
        )


class StepRetried(Model):
    """A failed step run again."""

    workflow_id: JobId
    step: str
    job_id: JobId = Field(description="The step's job, with fresh attempts.")
