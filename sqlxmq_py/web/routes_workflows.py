"""The operations of the HTTP API on workflows and rate limits per key, declared as
``routes.py`` declares the others (and listed after them in the document)."""

from __future__ import annotations

from starlette.convertors import Convertor, register_url_convertor

from .operation import Operation
from .rate_limits_api import delete_rate_limit, get_rate_limits, put_rate_limit
from .rate_models import (
    PatternPath,
    RateLimitRemoved,
    RateLimitRequest,
    RateLimits,
    RateRuleResponse,
)
from .requests import CancelRequest, EmptyRequest
from .workflow_models import (
    StepPath,
    StepRetried,
    WorkflowCancelResponse,
    WorkflowList,
    WorkflowListQuery,
    WorkflowResponse,
)
from .workflows_api import (
    cancel_workflow_handler,
    get_workflow,
    get_workflows,
    retry_step_handler,
)


class _AnyText(Convertor[str]):
    """A path parameter that may hold any character, ``/`` and newlines included (sent
    percent-encoded): Starlette's ``path`` stops at a newline, so a pattern holding one found no
    route, a 404 where the operation answers 400 naming the field or takes the value."""

    regex = "[\\s\\S]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


TEXT = "sqlxmq_text"
"""The name the convertor is registered under (Starlette's registry is shared: a name of ours)."""
register_url_convertor(TEXT, _AnyText())

__all__ = ["RATE_OPERATIONS", "WORKFLOW_OPERATIONS"]

_WORKFLOW_ID = "A workflow id."
_NO_WORKFLOW = "No such workflow (it never existed, or it expired)."

WORKFLOW_OPERATIONS: tuple[Operation, ...] = (
    Operation(
        method="GET",
        path="/workflows",
        operation_id="listWorkflows",
        tag="workflows",
        summary="The newest workflows, each with its steps counted by state",
        handler=get_workflows,
        query=WorkflowListQuery,
        responses={200: (WorkflowList, "The workflows, newest first.")},
    ),
    Operation(
        method="GET",
        path="/workflows/{id}",
        operation_id="getWorkflow",
        tag="workflows",
        summary="A workflow with its steps: state, job, parents, policy, group, attempts, "
        "error, result",
        handler=get_workflow,
        id_description=_WORKFLOW_ID,
        responses={200: (WorkflowResponse, "The workflow.")},
        errors=(404,),
        meanings={404: _NO_WORKFLOW},
    ),
    Operation(
        method="POST",
        path="/workflows/{id}/cancel",
        operation_id="cancelWorkflow",
        tag="workflows",
        summary="Cancel a whole workflow",
        description="No step is released any more; steps not running are cancelled at once, "
        "running ones are asked to stop. Cancelling twice changes nothing more.",
        handler=cancel_workflow_handler,
        changes=True,
        body=CancelRequest,
        id_description=_WORKFLOW_ID,
        responses={200: (WorkflowCancelResponse, "Cancelled.")},
        errors=(404,),
        meanings={404: _NO_WORKFLOW},
    ),
    Operation(
        method="POST",
        path="/workflows/{id}/steps/{step}/retry",
        route="/workflows/{id}/steps/{step:" + TEXT + "}/retry",
        operation_id="retryWorkflowStep",
        tag="workflows",
        summary="Run a failed step again",
        description="With its attempts counted from zero; the steps it cancelled or skipped "
        "wait for it again and run once it succeeds.",
        handler=retry_step_handler,
        changes=True,
        body=EmptyRequest,
        id_description=_WORKFLOW_ID,
        path_params=StepPath,
        responses={200: (StepRetried, "Retried.")},
        errors=(404, 409),
        meanings={
            404: "No such workflow, or it has no such step.",
            409: "The workflow was cancelled, or the step has not failed (or its failed job "
            "was purged).",
        },
    ),
)

RATE_OPERATIONS: tuple[Operation, ...] = (
    Operation(
        method="GET",
        path="/rate-limits",
        operation_id="listRateLimits",
        tag="rate-limits",
        summary="The rate rules, and the busiest keys: starts in the current window, when each "
        "next allows a start",
        handler=get_rate_limits,
        responses={200: (RateLimits, "The rules and keys.")},
    ),
    Operation(
        method="PUT",
        path="/rate-limits/{pattern}",
        route="/rate-limits/{pattern:" + TEXT + "}",
        operation_id="setRateLimit",
        tag="rate-limits",
        summary="Set a key's or a prefix's rule (replacing its rule)",
        description="Leases apply it from their next start; if it allows more than before, the "
        "jobs the old rule deferred become due now (a tighter rule leaves them as they are).",
        handler=put_rate_limit,
        changes=True,
        body=RateLimitRequest,
        body_required=True,
        path_params=PatternPath,
        responses={200: (RateRuleResponse, "Set: the rule.")},
    ),
    Operation(
        method="DELETE",
        path="/rate-limits/{pattern}",
        route="/rate-limits/{pattern:" + TEXT + "}",
        operation_id="removeRateLimit",
        tag="rate-limits",
        summary="Remove a rule (its keys are no longer limited, unless a prefix rule names them)",
        handler=delete_rate_limit,
        changes=True,
        path_params=PatternPath,
        responses={200: (RateLimitRemoved, "Removed.")},
        errors=(404,),
        meanings={404: "No rule has this pattern."},
    ),
)
