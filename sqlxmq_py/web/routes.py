"""Every operation of the HTTP API, declared once: method, path, the models of its input and
answers, whether it needs the token. The routes (``operation.py``) and the OpenAPI document
(``openapi.py``) are both made from this table."""

from __future__ import annotations

from pydantic import BaseModel

from .api import (
    cancel_job,
    cancel_jobs,
    get_blocked_chains,
    get_counts,
    get_job,
    get_job_details,
    get_job_result,
    get_throughput,
    list_jobs,
    purge_jobs,
    retry_job,
    retry_jobs,
    spawn_job,
    wait_for_job_result,
)
from .bulk_api import bulk_cancel, bulk_count, bulk_delete, bulk_retry, bulk_run_now
from .bulk_models import (
    BulkCancelRequest,
    BulkCountRequest,
    BulkCountResponse,
    BulkDeleteRequest,
    BulkRequest,
    BulkResponse,
)
from .count_models import QueueCounts, Throughput
from .operation import Operation
from .requests import (
    CancelJobsRequest,
    CancelRequest,
    EmptyRequest,
    JobListQuery,
    PurgeRequest,
    RetryJobsRequest,
    SpawnRequest,
    ThroughputQuery,
    WaitRequest,
)
from .responses import (
    BlockedChains,
    CancelJobsResponse,
    CancelOutcome,
    JobDetailsResponse,
    JobList,
    JobPending,
    JobResult,
    JobStatusResponse,
    PurgeResponse,
    RetryJobsResponse,
    SpawnResponse,
)
from .routes_fleet import FLEET_OPERATIONS
from .routes_workflows import RATE_OPERATIONS, WORKFLOW_OPERATIONS

__all__ = ["OPERATIONS", "TAGS"]

TAGS = {
    "jobs": "One job: spawn it, read it, wait for its result, cancel or retry it.",
    "bulk": "Many jobs at once.",
    "queue": "The queue as a whole: counts, throughput, blocked chains, live workers.",
    "channels": "Channels: pause and resume them, limit how many of their jobs run at once.",
    "schedules": "Cron schedules: list them, enable, disable, trigger or delete one.",
    "workflows": "Workflows: list them, read one's steps, cancel one, retry a failed step.",
    "rate-limits": "Rate limits per key: the rules and the busiest keys; set or remove a rule.",
}
"""The groups of operations, in the order the document lists them."""

_RESULT: dict[int, tuple[type[BaseModel], str]] = {
    200: (JobResult, "The job completed: its result."),
    202: (JobPending, "Not finished (within the timeout): ask again."),
}

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        method="POST",
        path="/jobs",
        operation_id="spawnJob",
        tag="jobs",
        summary="Spawn a job",
        handler=spawn_job,
        changes=True,
        body=SpawnRequest,
        body_required=True,
        responses={201: (SpawnResponse, "Spawned (committed at once).")},
        errors=(409,),
        location=True,
    ),
    Operation(
        method="GET",
        path="/jobs",
        operation_id="listJobs",
        tag="jobs",
        summary="List jobs, newest first (queued and kept)",
        handler=list_jobs,
        query=JobListQuery,
        responses={200: (JobList, "One page.")},
    ),
    Operation(
        method="GET",
        path="/jobs/{id}",
        operation_id="getJob",
        tag="jobs",
        summary="A job's status",
        handler=get_job,
        responses={200: (JobStatusResponse, "The job.")},
        errors=(404,),
    ),
    Operation(
        method="GET",
        path="/jobs/{id}/details",
        operation_id="getJobDetails",
        tag="jobs",
        summary="A job's status, payload, headers, ordered chain and continuations",
        handler=get_job_details,
        responses={200: (JobDetailsResponse, "The job.")},
        errors=(404,),
    ),
    Operation(
        method="GET",
        path="/jobs/{id}/result",
        operation_id="getJobResult",
        tag="jobs",
        summary="A job's result, as it is now",
        description="A read: it changes nothing, and it does not wait. A job's result is kept "
        "only if the job asked for it (retain_for) or someone waited for it (POST): a "
        "completed job that was not kept answers 404.",
        handler=get_job_result,
        responses=_RESULT,
        errors=(404, 409),
    ),
    Operation(
        method="POST",
        path="/jobs/{id}/result",
        operation_id="waitForJobResult",
        tag="jobs",
        summary="Wait for a job's result",
        description="Registers interest in the job (it is then kept with its result for at "
        "least an hour after it ends, and its end is notified), waits up to timeout seconds "
        "(woken by a notification, no polling), and answers as GET does.",
        handler=wait_for_job_result,
        changes=True,
        body=WaitRequest,
        responses=_RESULT,
        errors=(404, 409),
    ),
    Operation(
        method="POST",
        path="/jobs/{id}/cancel",
        operation_id="cancelJob",
        tag="jobs",
        summary="Cancel a job",
        description="A waiting job leaves the queue now (kept as cancelled history); a running "
        "job's runner is asked to stop it.",
        handler=cancel_job,
        changes=True,
        body=CancelRequest,
        responses={200: (CancelOutcome, "Cancelled or requested.")},
        errors=(404, 409),
    ),
    Operation(
        method="POST",
        path="/jobs/{id}/retry",
        operation_id="retryJob",
        tag="jobs",
        summary="Run a failed job again, with a fresh set of attempts",
        handler=retry_job,
        changes=True,
        body=EmptyRequest,
        responses={200: (JobStatusResponse, "Retried: the job's new status.")},
        errors=(404, 409),
    ),
    Operation(
        method="POST",
        path="/cancel",
        operation_id="cancelJobs",
        tag="bulk",
        summary="Cancel several jobs",
        handler=cancel_jobs,
        changes=True,
        body=CancelJobsRequest,
        body_required=True,
        responses={200: (CancelJobsResponse, "What happened to each job found.")},
    ),
    Operation(
        method="POST",
        path="/retry",
        operation_id="retryJobs",
        tag="bulk",
        summary="Run failed jobs again",
        handler=retry_jobs,
        changes=True,
        body=RetryJobsRequest,
        body_required=True,
        responses={200: (RetryJobsResponse, "The jobs retried (others were not failed).")},
    ),
    Operation(
        method="POST",
        path="/purge",
        operation_id="purgeJobs",
        tag="bulk",
        summary="Remove old failed jobs and history",
        handler=purge_jobs,
        changes=True,
        body=PurgeRequest,
        responses={200: (PurgeResponse, "How many were removed.")},
    ),
    Operation(
        method="POST",
        path="/bulk/count",
        operation_id="countMatchingJobs",
        tag="bulk",
        summary="Count the jobs matching a filter (what a bulk action would change)",
        description="Changes nothing: what to show before asking to retry, cancel or delete "
        "them all (it needs the token, as the actions it comes before do). With action "
        "delete, also the ordered chains the delete would release.",
        handler=bulk_count,
        changes=True,
        body=BulkCountRequest,
        body_required=True,
        responses={200: (BulkCountResponse, "The count.")},
    ),
    Operation(
        method="POST",
        path="/bulk/retry",
        operation_id="retryMatchingJobs",
        tag="bulk",
        summary="Run every matching failed job again",
        description="Each with a fresh set of attempts, in batches of 1000 (each its own "
        "transaction).",
        handler=bulk_retry,
        changes=True,
        body=BulkRequest,
        body_required=True,
        responses={200: (BulkResponse, "How many were retried.")},
    ),
    Operation(
        method="POST",
        path="/bulk/cancel",
        operation_id="cancelMatchingJobs",
        tag="bulk",
        summary="Cancel every matching job that is not running",
        description="Scheduled, waiting, ready and retrying jobs, in batches of 1000; a job "
        "a runner leases meanwhile runs and is not cancelled. Kept as cancelled history.",
        handler=bulk_cancel,
        changes=True,
        body=BulkCancelRequest,
        body_required=True,
        responses={200: (BulkResponse, "How many were cancelled.")},
    ),
    Operation(
        method="POST",
        path="/bulk/delete",
        operation_id="deleteMatchingJobs",
        tag="bulk",
        summary="Delete every matching failed, completed or cancelled job",
        description="Failed jobs leave the queue and kept jobs the history, in batches of "
        "1000. Deleting the failed head of an ordered chain runs the jobs behind it: unless "
        "release_chains is true, such a delete answers 409 with the chains and deletes "
        "nothing.",
        handler=bulk_delete,
        changes=True,
        body=BulkDeleteRequest,
        body_required=True,
        responses={200: (BulkResponse, "How many were deleted.")},
        errors=(409,),
    ),
    Operation(
        method="POST",
        path="/bulk/run-now",
        operation_id="runMatchingJobsNow",
        tag="bulk",
        summary="Make every matching scheduled or retrying job ready now",
        description="With the attempts they have left; a job behind its ordered chain or "
        "waiting for parents runs when they let it.",
        handler=bulk_run_now,
        changes=True,
        body=BulkRequest,
        body_required=True,
        responses={200: (BulkResponse, "How many were made ready.")},
    ),
    Operation(
        method="GET",
        path="/counts",
        operation_id="getCounts",
        tag="queue",
        summary="Jobs per channel and state",
        handler=get_counts,
        responses={200: (QueueCounts, "The counts.")},
    ),
    Operation(
        method="GET",
        path="/throughput",
        operation_id="getThroughput",
        tag="queue",
        summary="Finished attempts per minute, as counted by the runners",
        handler=get_throughput,
        query=ThroughputQuery,
        responses={200: (Throughput, "The counts.")},
    ),
    Operation(
        method="GET",
        path="/blocked-chains",
        operation_id="getBlockedChains",
        tag="queue",
        summary="Ordered chains stopped by their failed head",
        handler=get_blocked_chains,
        responses={200: (BlockedChains, "The chains.")},
    ),
    *FLEET_OPERATIONS,
    *WORKFLOW_OPERATIONS,
    *RATE_OPERATIONS,
)
"""Every operation of the API, in the order the document lists them."""
