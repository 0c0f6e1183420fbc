"""The HTTP JSON API under ``/api``, for producers and tools in any language.

Reads are open and change nothing; every state change, and waiting for a job's result (which
registers interest in the job), needs ``Authorization: Bearer <token>``. These are the
handlers; each is declared once, with the typed models of its input and answers, in
``routes.OPERATIONS``, from which come its route and its part of the OpenAPI document. Errors
are ``{"error": code, "detail": message, "field": name or null}`` objects; input
that does not validate is a 400 naming the first field at fault.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool
from starlette.responses import Response

from ..admin import (
    JobStatus,
    attempt_errors,
    blocked_chains,
    cancel,
    channel_info,
    job_status,
    list_channels,
    list_workers,
    pause_channel,
    purge,
    queue_counts,
    resume_channel,
    retry,
    set_channel_limit,
    throughput,
)
from ..errors import JobCancelledError, JobFailedError, JobNotFoundError
from . import queries
from .context import WebContext, base_path
from .count_models import QueueCounts, Throughput
from .fleet import ChannelRow, Channels, Workers
from .http import ApiError, answer, bad, field_errors
from .operation import Input
from .requests import (
    CancelJobsRequest,
    CancelRequest,
    ChannelLimitRequest,
    ChannelRequest,
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
from .spawn import INDEXED_FIELDS, build_spawn
from .waiting import wait_turn

__all__ = [
    "cancel_job",
    "cancel_jobs",
    "get_blocked_chains",
    "get_counts",
    "get_job",
    "get_job_details",
    "get_job_result",
    "get_throughput",
    "get_workers",
    "list_jobs",
    "purge_jobs",
    "retry_job",
    "retry_jobs",
    "spawn_job",
    "wait_for_job_result",
]

_FINISHED = frozenset({"failed", "completed", "cancelled"})


async def _status_or_404(pool: AsyncConnectionPool[Any], job_id: uuid.UUID) -> JobStatus:
    status = await job_status(pool, job_id)
    if status is None:
        raise ApiError(
            404, "not_found", f"job {job_id} is neither queued nor kept in the history", field="id"
        )
    return status


def _job(status: JobStatus) -> dict[str, Any]:
    return JobStatusResponse.of(status).model_dump(mode="json")


async def spawn_job(ctx: WebContext, given: Input) -> Response:
    request = given.body_as(SpawnRequest)
    builder = build_spawn(request)
    pool = await ctx.pools.open()
    try:
        job_id = await builder.spawn(pool)
    except psycopg.errors.UniqueViolation as exc:
        raise ApiError(409, "conflict", "a job with this id already exists", field="id") from exc
    except psycopg.errors.ProgramLimitExceeded as exc:
        # a text too long for an index entry (about 2,700 bytes): which one, the index says
        message = str(exc.diag.message_primary or exc)
        fields = next((f for index, f in INDEXED_FIELDS if index in message), ())
        field = max(fields, key=lambda f: len(str(getattr(request, f) or "")), default=None)
        raise bad(field, f"{field or 'a value'} is too long for the queue: {message}") from exc
    except (psycopg.errors.DataError, psycopg.errors.IntegrityError) as exc:
        # not expected: every option is checked within the schema's bounds
        raise bad(None, f"the database refused the job's options: {exc}") from exc
    location = f"{base_path(given.request.scope)}/api/jobs/{job_id}"
    return answer(SpawnResponse(id=job_id), 201, {"Location": location})


async def list_jobs(ctx: WebContext, given: Input) -> Response:
    query = given.query_as(JobListQuery)
    pool = await ctx.pools.open()
    jobs, next_before = await queries.page_jobs(
        pool,
        states=query.state,
        channel_name=query.channel_name,
        name=query.name,
        job_key=query.job_key,
        limit=query.limit,
        before=query.before,
    )
    listed = [JobStatusResponse.of(j) for j in jobs]
    return answer(JobList.model_construct(jobs=listed, next_before=next_before))


async def get_job(ctx: WebContext, given: Input) -> Response:
    pool = await ctx.pools.open()
    return answer(JobStatusResponse.of(await _status_or_404(pool, given.id())))


async def get_job_details(ctx: WebContext, given: Input) -> Response:
    job_id = given.id()
    pool = await ctx.pools.open()
    status = await _status_or_404(pool, job_id)
    details = await queries.job_details(pool, job_id)
    chain = await queries.job_chain(pool, job_id)
    parents, children = await queries.job_links(pool, job_id)
    errors = await attempt_errors(pool, job_id)
    workflow = await queries.job_workflow_step(pool, job_id)
    return answer(
        JobDetailsResponse.of(status, details, chain, parents, children, errors, workflow)
    )


def _result(status: JobStatus) -> Response:
    """A job's outcome as it is now: its result, 202 while it is unfinished, 409 if it failed or
    was cancelled."""
    if status.state == "completed":
        return answer(JobResult(id=status.id, state="completed", result=status.result))
    if status.state in _FINISHED:
        ended = "failed" if status.state == "failed" else "was cancelled"
        raise ApiError(
            409,
            "job_failed" if status.state == "failed" else "job_cancelled",
            f"job {status.id} ({status.name!r}) {ended}: {status.last_error}",
            extra={"job": _job(status)},
        )
    return answer(JobPending.model_construct(id=status.id, state=status.state), 202)


async def get_job_result(ctx: WebContext, given: Input) -> Response:
    """The job's outcome now. A read: nothing about the job changes (to wait for it, and have
    it kept until someone reads the result, POST to the same path with the token)."""
    if "timeout" in given.request.query_params:
        raise bad(
            "timeout",
            "GET /jobs/{id}/result does not wait: waiting registers interest in the job (it is "
            "then kept an hour after it ends, and its end is notified), which needs the token: "
            'POST /jobs/{id}/result with the body {"timeout": seconds}',
        )
    pool = await ctx.pools.open()
    return _result(await _status_or_404(pool, given.id()))


async def wait_for_job_result(ctx: WebContext, given: Input) -> Response:
    """Waits up to ``timeout`` seconds for the job to end (registering interest in it, so that
    it is kept with its result for an hour after it ends), then answers as GET does."""
    job_id = given.id()
    timeout = given.body_as(WaitRequest).timeout or 0.0
    pool = await ctx.pools.open()
    for wait in (timeout, 0.0):
        try:
            value = await wait_turn(ctx, job_id, wait)
        except JobNotFoundError as exc:
            raise ApiError(404, "not_found", str(exc), field="id") from exc
        except (JobFailedError, JobCancelledError) as exc:
            status = await job_status(pool, job_id)
            code = "job_failed" if isinstance(exc, JobFailedError) else "job_cancelled"
            extra = {} if status is None else {"job": _job(status)}
            raise ApiError(409, code, str(exc), extra=extra) from exc
        except TimeoutError:
            status = await _status_or_404(pool, job_id)
            if status.state not in _FINISHED:
                return answer(JobPending.model_construct(id=job_id, state=status.state), 202)
            continue  # it finished just now: read its outcome
        return answer(JobResult(id=job_id, state="completed", result=value))
    raise AssertionError("a finished job has an outcome")


async def cancel_job(ctx: WebContext, given: Input) -> Response:
    job_id = given.id()
    reason = given.body_as(CancelRequest).reason or "cancelled"
    pool = await ctx.pools.open()
    with field_errors("reason"):
        outcomes = await cancel(pool, [job_id], reason)
    if job_id in outcomes:
        return answer(CancelOutcome.model_construct(id=job_id, outcome=outcomes[job_id]))
    status = await _status_or_404(pool, job_id)
    raise ApiError(
        409,
        "conflict",
        f"job {job_id} is {status.state}: only unfinished jobs can be cancelled",
        extra={"job": _job(status)},
    )


async def retry_job(ctx: WebContext, given: Input) -> Response:
    job_id = given.id()
    pool = await ctx.pools.open()
    retried = await retry(pool, [job_id])
    status = await _status_or_404(pool, job_id)
    if job_id not in retried:
        raise ApiError(
            409,
            "conflict",
            f"job {job_id} is {status.state}: only failed jobs can be retried",
            extra={"job": _job(status)},
        )
    return answer(JobStatusResponse.of(status))


async def cancel_jobs(ctx: WebContext, given: Input) -> Response:
    request = given.body_as(CancelJobsRequest)
    pool = await ctx.pools.open()
    with field_errors("reason"):
        outcomes = await cancel(pool, list(request.ids), request.reason or "cancelled")
    return answer(CancelJobsResponse.model_construct(outcomes=outcomes))


async def retry_jobs(ctx: WebContext, given: Input) -> Response:
    pool = await ctx.pools.open()
    retried = await retry(pool, list(given.body_as(RetryJobsRequest).ids))
    return answer(RetryJobsResponse.model_construct(retried=retried))


def _seconds(value: float | None) -> timedelta | None:
    return None if value is None else timedelta(seconds=value)


async def purge_jobs(ctx: WebContext, given: Input) -> Response:
    request = given.body_as(PurgeRequest)
    pool = await ctx.pools.open()
    result = await purge(
        pool,
        failed_before=_seconds(request.failed_older_than_s),
        history_before=_seconds(request.history_older_than_s),
        release_chains=request.release_chains,
    )
    return answer(PurgeResponse.of(result))


async def get_counts(ctx: WebContext, given: Input) -> Response:
    pool = await ctx.pools.open()
    return answer(QueueCounts.of(await queue_counts(pool, exact=False)))


async def get_throughput(ctx: WebContext, given: Input) -> Response:
    query = given.query_as(ThroughputQuery)
    since = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(
        minutes=query.minutes - 1
    )
    pool = await ctx.pools.open()
    return answer(Throughput.of(since, await throughput(pool, since, query.channel_name)))


async def get_blocked_chains(ctx: WebContext, given: Input) -> Response:
    pool = await ctx.pools.open()
    return answer(BlockedChains.of(await blocked_chains(pool)))


async def get_workers(ctx: WebContext, given: Input) -> Response:
    pool = await ctx.pools.open()
    return answer(Workers.of(await list_workers(pool)))


async def get_channels(ctx: WebContext, given: Input) -> Response:
    pool = await ctx.pools.open()
    return answer(Channels.of(await list_channels(pool)))


async def _channel(pool: AsyncConnectionPool[Any], channel_name: str) -> Response:
    return answer(ChannelRow.of(await channel_info(pool, channel_name)))


async def pause(ctx: WebContext, given: Input) -> Response:
    channel_name = given.body_as(ChannelRequest).channel_name
    pool = await ctx.pools.open()
    with field_errors("channel_name"):
        await pause_channel(pool, channel_name)
    return await _channel(pool, channel_name)


async def resume(ctx: WebContext, given: Input) -> Response:
    channel_name = given.body_as(ChannelRequest).channel_name
    pool = await ctx.pools.open()
    with field_errors("channel_name"):
        await resume_channel(pool, channel_name)
    return await _channel(pool, channel_name)


async def set_limit(ctx: WebContext, given: Input) -> Response:
    request = given.body_as(ChannelLimitRequest)
    pool = await ctx.pools.open()
    with field_errors("channel_name"):
        await set_channel_limit(pool, request.channel_name, request.max_running)
    return await _channel(pool, request.channel_name)
