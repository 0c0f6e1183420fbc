"""The HTTP API's handlers for workflows: list them, read one with its steps, cancel one, retry
a failed step. Declared in ``routes_workflows.WORKFLOW_OPERATIONS``; an unknown workflow or step
answers 404, an action that does not apply (a cancelled workflow, a step that did not fail)
409."""

from __future__ import annotations

from starlette.responses import Response

from ..admin import cancel_workflow, list_workflows, retry_step, workflow_status
from ..workflow import (
    StepNotRetryableError,
    UnknownStepError,
    WorkflowClosedError,
    WorkflowNotFoundError,
)
from . import queries
from .context import WebContext
from .http import ApiError, answer, field_errors
from .operation import Input
from .requests import CancelRequest
from .workflow_models import (
    StepPath,
    StepRetried,
    WorkflowCancelResponse,
    WorkflowList,
    WorkflowListQuery,
    WorkflowResponse,
    WorkflowSummaryResponse,
)

__all__ = ["cancel_workflow_handler", "get_workflow", "get_workflows", "retry_step_handler"]


async def get_workflows(ctx: WebContext, given: Input) -> Response:
    query = given.query_as(WorkflowListQuery)
    pool = await ctx.pools.open()
    summaries = await list_workflows(pool, name=query.name, limit=query.limit)
    listed = [WorkflowSummaryResponse.of(s) for s in summaries]
    return answer(WorkflowList.model_construct(workflows=listed))


async def get_workflow(ctx: WebContext, given: Input) -> Response:
    workflow_id = given.id()
    pool = await ctx.pools.open()
    status = await workflow_status(pool, workflow_id)
    if status is None:
        raise ApiError(
            404,
            "not_found",
            f"workflow {workflow_id} does not exist (it never existed, or it expired)",
            field="id",
        )
    waits = await queries.workflow_rate_waits(pool, workflow_id)
    return answer(WorkflowResponse.of(status, waits))


async def cancel_workflow_handler(ctx: WebContext, given: Input) -> Response:
    workflow_id = given.id()
    reason = given.body_as(CancelRequest).reason or "workflow cancelled"
    pool = await ctx.pools.open()
    try:
        with field_errors("reason"):
            done = await cancel_workflow(pool, workflow_id, reason)
    except WorkflowNotFoundError as exc:
        raise ApiError(404, "not_found", str(exc), field="id") from exc
    return answer(WorkflowCancelResponse.of(workflow_id, done))


async def retry_step_handler(ctx: WebContext, given: Input) -> Response:
    workflow_id = given.id()
    step = given.path_as(StepPath).step
    pool = await ctx.pools.open()
    try:
        job_id = await retry_step(pool, workflow_id, step)
    except WorkflowNotFoundError as exc:
        raise ApiError(404, "not_found", str(exc), field="id") from exc
    except UnknownStepError as exc:
        raise ApiError(404, "not_found", str(exc), field="step") from exc
    except (WorkflowClosedError, StepNotRetryableError) as exc:
        raise ApiError(409, "conflict", str(exc), field="step") from exc
    return answer(StepRetried.model_construct(workflow_id=workflow_id, step=step, job_id=job_id))
