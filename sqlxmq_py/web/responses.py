"""What the HTTP API answers: response bodies as typed models, made from the admin API's rows.
The models are the OpenAPI document's schemas, and every answer is built through them."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import Field

from ..admin import (
    AttemptError,
    BlockedChain,
    JobStatus,
    PurgeResult,
)
from .fields import Count, JobId, Model, Timestamp
from .queries import ChainPosition, JobDetails, WorkflowStep
from .requests import StateName

__all__ = [
    "ERROR_CODES",
    "BlockedChains",
    "CancelJobsResponse",
    "CancelOutcome",
    "Error",
    "JobDetailsResponse",
    "JobList",
    "JobPending",
    "JobResult",
    "JobStatusResponse",
    "PurgeResponse",
    "SpawnResponse",
]

ERROR_CODES = (
    "bad_request",
    "unauthorized",
    "forbidden",
    "not_found",
    "method_not_allowed",
    "conflict",
    "job_failed",
    "job_cancelled",
    "chains_would_be_released",
    "payload_too_large",
    "unsupported_media_type",
    "unavailable",
    "internal_error",
)
ErrorCode = Literal[
    "bad_request",
    "unauthorized",
    "forbidden",
    "not_found",
    "method_not_allowed",
    "conflict",
    "job_failed",
    "job_cancelled",
    "chains_would_be_released",
    "payload_too_large",
    "unsupported_media_type",
    "unavailable",
    "internal_error",
]
Pending = Literal["uncommitted", "scheduled", "waiting", "ready", "running", "retrying"]
Outcome = Literal["cancelled", "requested"]


class InterruptionsResponse(Model):
    """How often stopping runners handed a job back unfinished (attempts not counted)."""

    count: Count
    last_at: Timestamp = Field(description="When it was last interrupted.")
    last_by: str = Field(description="The runner that last handed it back, as host:pid.")


class JobStatusResponse(Model):
    """A job's status."""

    id: JobId = Field(description="The job id.")
    name: str
    state: StateName
    attempts: Count
    max_attempts: Annotated[int, Field(ge=1)]
    channel_name: str
    channel_args: str
    priority: int
    job_key: str | None
    run_at: Timestamp | None = Field(
        description="When it may run (scheduled, retrying, ready) or when its lease ends (running)."
    )
    created_at: Timestamp = Field(description="When it was spawned.")
    finished_at: Timestamp | None = Field(description="When it completed or was cancelled.")
    last_error: str | None = Field(description="With its traceback.")
    result: Any = Field(description="The job's return value, when it completed and was kept.")
    cancel_requested: bool
    interrupted: InterruptionsResponse | None = Field(
        None, description="Its interruptions by stopping runners (single jobs only, not lists)."
    )

    @classmethod
    def of(cls, status: JobStatus) -> JobStatusResponse:
        """The answer for an admin ``JobStatus``."""
        fields = {name: getattr(status, name) for name in cls.model_fields}
        i = status.interrupted
        fields["interrupted"] = (
            None
            if i is None
            else InterruptionsResponse.model_construct(
                count=i.count, last_at=i.last_at, last_by=i.last_by
            )
        )
        return cls.model_construct(**fields)


class Error(Model):
    """Every error answer: a stable code, a message for people, and the field at fault."""

    error: ErrorCode = Field(description="A stable code.")
    detail: str = Field(description="What was wrong, for people.")
    field: str | None = Field(description="The request field at fault, if one is.")
    job: JobStatusResponse | None = Field(
        None, description="The job's status, when its state refused the request."
    )
    chains: list[BlockedChainResponse] | None = Field(
        None, description="The ordered chains a delete would release (chains_would_be_released)."
    )


class SpawnResponse(Model):
    """A spawned job."""

    id: JobId = Field(
        description="The job's id (with a job key or throttle, the id of the job that stands "
        "for this one)."
    )


class JobList(Model):
    """One page of jobs, newest first."""

    jobs: list[JobStatusResponse]
    next_before: JobId | None = Field(
        description="Pass as before= for the next page; null on the last page."
    )


class Chain(Model):
    """A queued ordered job's place in its chain."""

    position: Annotated[int, Field(ge=1)]
    length: Annotated[int, Field(ge=1)]
    head_id: JobId = Field(description="The first job of the chain.")
    previous_id: JobId | None = Field(description="The job before this one.")
    next_id: JobId | None = Field(description="The job after this one.")


class AttemptErrorResponse(Model):
    """A failed attempt's error."""

    attempt: Count
    at: Timestamp
    error: str


def _seconds(value: timedelta | None) -> float | None:
    return None if value is None else value.total_seconds()


class WorkflowStepRef(Model):
    """The workflow step a job is."""

    workflow_id: JobId = Field(description="GET /api/workflows/{id} reads it.")
    workflow_name: str
    step: str


class RateWaitResponse(Model):
    """A rate key of the job whose budget is spent now."""

    key: str
    until: Timestamp = Field(description="When the key allows a start again.")


RATE_WAITING = frozenset({"scheduled", "ready", "retrying"})
"""The states in which a spent rate key holds a job back (a running or finished job waits for
nothing)."""


class JobDetailsResponse(Model):
    """A job's status with its payload, options, chain and continuations."""

    status: JobStatusResponse
    payload_json: str | None = Field(description="The JSON payload as stored (JSON text).")
    payload_bytes_size: Count | None
    headers: dict[str, str]
    ordered: bool
    chain: Chain | None = Field(description="A queued ordered job's place in its chain.")
    parents: list[JobId] = Field(
        description="Parents this continuation still waits for (completed parents are no "
        "longer listed)."
    )
    children: list[JobId] = Field(description="Continuations still waiting for this job.")
    retry_backoff_s: float | None
    lease_s: float | None
    retain_for_s: float | None
    dead_letter: str | None
    attempt_errors: list[AttemptErrorResponse] = Field(
        description="The errors of the job's failed attempts, oldest first (the last 25; each "
        "cut to 4,000 characters)."
    )
    workflow: WorkflowStepRef | None = Field(
        None, description="The workflow step this job is, if it is one (while it is kept)."
    )
    rate_keys: list[str] = Field([], description="The job's rate keys (queued jobs only).")
    rate_waits: list[RateWaitResponse] = Field(
        [],
        description="Those of its rate keys whose budget is spent now, while the job waits "
        "to start (scheduled, ready or retrying): why, and until when.",
    )

    @classmethod
    def of(
        cls,
        status: JobStatus,
        details: JobDetails | None,
        chain: ChainPosition | None,
        parents: list[uuid.UUID],
        children: list[uuid.UUID],
        errors: list[AttemptError],
        workflow: WorkflowStep | None = None,
    ) -> JobDetailsResponse:
        """The answer for a job's rows."""
        waits = status.rate_waits if status.state in RATE_WAITING else ()
        return cls.model_construct(
            workflow=None
            if workflow is None
            else WorkflowStepRef.model_construct(
                workflow_id=workflow.workflow_id,
                workflow_name=workflow.workflow_name,
                step=workflow.step,
            ),
            rate_keys=list(status.rate_keys),
            rate_waits=[RateWaitResponse.model_construct(key=w.key, until=w.until) for w in waits],
            status=JobStatusResponse.of(status),
            payload_json=None if details is None else details.payload_json,
            payload_bytes_size=None if details is None else details.payload_bytes_size,
            headers={} if details is None else details.headers,
            ordered=chain is not None or (details is not None and details.ordered),
            chain=None
            if chain is None
            else Chain.model_construct(
                position=chain.position,
                length=chain.length,
                head_id=chain.head_id,
                previous_id=chain.previous_id,
                next_id=chain.next_id,
            ),
            parents=parents,
            children=children,
            retry_backoff_s=None if details is None else _seconds(details.retry_backoff),
            lease_s=None if details is None else _seconds(details.lease),
            retain_for_s=None if details is None else _seconds(details.retain_for),
            dead_letter=None if details is None else details.dead_letter,
            attempt_errors=[
                AttemptErrorResponse.model_construct(attempt=e.attempt, at=e.at, error=e.error)
                for e in errors
            ],
        )


class JobResult(Model):
    """A completed job's result."""

    id: JobId = Field(description="The job id.")
    state: Literal["completed"]
    result: Any = Field(description="The job's return value (any JSON, null included).")


class JobPending(Model):
    """A job that has not finished yet."""

    id: JobId = Field(description="The job id.")
    state: Pending


class CancelOutcome(Model):
    """What cancelling did."""

    id: JobId = Field(description="The job id.")
    outcome: Outcome = Field(
        description="cancelled: it left the queue now; requested: it is running and its runner "
        "was asked to stop it."
    )


class CancelJobsResponse(Model):
    """What cancelling did to each job found."""

    outcomes: dict[JobId, Outcome] = Field(
        description="Per job found; unknown and finished jobs are left out."
    )


class RetryJobsResponse(Model):
    """The failed jobs now runnable again."""

    retried: list[JobId]


class PurgeResponse(Model):
    """How many jobs were removed."""

    failed: Count
    history: Count
    chains_kept: list[BlockedChainResponse] = Field(
        description="Ordered chains whose failed head was kept: removing it would run the jobs "
        "behind it (send release_chains: true)."
    )

    @classmethod
    def of(cls, result: PurgeResult) -> PurgeResponse:
        """The answer for a ``PurgeResult``."""
        kept = BlockedChains.of(list(result.chains_kept)).chains
        return cls.model_construct(failed=result.failed, history=result.history, chains_kept=kept)


class BlockedChainResponse(Model):
    """An ordered chain stopped by its failed head."""

    channel_name: str
    channel_args: str
    head_id: JobId = Field(description="The failed head: retry or cancel it.")
    head_name: str
    error: str | None
    waiting: Count


class BlockedChains(Model):
    """Ordered chains stopped by their failed head."""

    chains: list[BlockedChainResponse]

    @classmethod
    def of(cls, chains: list[BlockedChain]) -> BlockedChains:
        """The answer for the admin API's chains."""
        fields = BlockedChainResponse.model_fields
        rows = [
            BlockedChainResponse.model_construct(**{n: getattr(c, n) for n in fields})
            for c in chains
        ]
        return cls.model_construct(chains=rows)
