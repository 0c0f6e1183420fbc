"""The dashboard's workflow pages: the newest workflows (``/workflows``), and one workflow
(``/workflows/{id}``) with its graph drawn as server-rendered SVG (steps in columns by depth,
an arrow from each parent) and its steps as a table. Every name
and error is escaped by the template; nothing is loaded from elsewhere. Logged in, the page
cancels the workflow or retries a failed step (the session's CSRF token, same origin, as every
form that changes the queue)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from ..admin import cancel_workflow, list_workflows, retry_step, workflow_status
from ..workflow import (
    StepNotRetryableError,
    UnknownStepError,
    WorkflowClosedError,
    WorkflowNotFoundError,
    WorkflowStatus,
    WorkflowStepStatus,
)
from . import queries
from .context import WebContext
from .fields import canonical_uuid
from .forms import Form, flash_redirect, plural, read_form, refuse
from .http import ApiError, bad, path_id
from .render import html_error, render

__all__ = [
    "Drawing",
    "draw",
    "workflow_cancel_action",
    "workflow_page",
    "workflow_retry_action",
    "workflows_page",
]

NODE_WIDTH = 180
NODE_HEIGHT = 44
COLUMN_GAP = 70
ROW_GAP = 18
MARGIN = 12

FILL = {
    "waiting": "#3a4452",
    "ready": "#2f5f8a",
    "running": "#2f7a8a",
    "retrying": "#8a6d2b",
    "completed": "#2b7a43",
    "failed": "#8a2b2b",
    "cancelled": "#5a5a5a",
    "skipped": "#4a4f6a",
}
"""A step's box colour by its display state."""


@dataclass(frozen=True, kw_only=True)
class Node:
    """A step's box."""

    step: WorkflowStepStatus
    x: int
    y: int
    fill: str
    label: str
    """The name, cut to fit the box."""


@dataclass(frozen=True, kw_only=True)
class Edge:
    """An arrow from a parent's box to a child's, as an SVG path."""

    path: str
    parent: str
    child: str


@dataclass(frozen=True, kw_only=True)
class Drawing:
    """The graph laid out: boxes, arrows and the picture's size."""

    nodes: list[Node]
    edges: list[Edge]
    width: int
    height: int


def _label(name: str) -> str:
    # 13 px text in a 180 px box after a 10 px inset: about 22 average characters fit
    return name if len(name) <= 22 else name[:21] + "…"


def draw(status: WorkflowStatus) -> Drawing:
    """Lays the graph out: a column per depth, steps in a column in the order they were
    added, an arrow from each parent's right edge to its child's left edge."""
    depths = status.depths()
    rows: dict[int, int] = {}
    places: dict[str, tuple[int, int]] = {}
    nodes = []
    for s in status.steps:
        column = depths.get(s.name, 0)
        row = rows.get(column, 0)
        rows[column] = row + 1
        x = MARGIN + column * (NODE_WIDTH + COLUMN_GAP)
        y = MARGIN + row * (NODE_HEIGHT + ROW_GAP)
        places[s.name] = (x, y)
        nodes.append(Node(step=s, x=x, y=y, fill=FILL[s.display], label=_label(s.name)))
    edges = []
    for s in status.steps:
        cx, cy = places[s.name]
        for parent in s.parents:
            if parent not in places:
                continue
            px, py = places[parent]
            x1, y1 = px + NODE_WIDTH, py + NODE_HEIGHT // 2
            x2, y2 = cx - 6, cy + NODE_HEIGHT // 2
            bend = (x2 - x1) // 2
            edges.append(
                Edge(
                    path=f"M{x1},{y1} C{x1 + bend},{y1} {x2 - bend},{y2} {x2},{y2}",
                    parent=parent,
                    child=s.name,
                )
            )
    columns = max(rows, default=0) + 1
    width = 2 * MARGIN + columns * NODE_WIDTH + (columns - 1) * COLUMN_GAP
    height = 2 * MARGIN + max(rows.values(), default=1) * (NODE_HEIGHT + ROW_GAP) - ROW_GAP
    return Drawing(nodes=nodes, edges=edges, width=width, height=height)


async def workflow_page(ctx: WebContext, request: Request) -> Response:
    """A workflow's graph with each step's state."""
    workflow_id = path_id(request)
    pool = await ctx.pools.open()
    status = await workflow_status(pool, workflow_id)
    if status is None:
        return html_error(
            ctx,
            request,
            404,
            f"Workflow {workflow_id} does not exist (it never existed, or it expired).",
        )
    return render(
        ctx,
        request,
        "workflow.html",
        workflow=status,
        rate_waits=await queries.workflow_rate_waits(pool, workflow_id),
        drawing=draw(status),
        node_width=NODE_WIDTH,
        node_height=NODE_HEIGHT,
    )


async def workflows_page(ctx: WebContext, request: Request) -> Response:
    """The newest workflows, each with its steps counted by state."""
    pool = await ctx.pools.open()
    return render(ctx, request, "workflows.html", workflows=await list_workflows(pool, limit=100))


def _workflow_id(form: Form) -> uuid.UUID:
    try:
        return canonical_uuid(form.get("workflow"))
    except ValueError as exc:
        raise bad("workflow", f"workflow: {exc}") from exc


async def workflow_cancel_action(ctx: WebContext, request: Request) -> Response:
    """Cancels the form's ``workflow``."""
    form = await read_form(request)
    refusal = refuse(ctx, request, form)
    if refusal is not None:
        return refusal
    workflow_id = _workflow_id(form)
    pool = await ctx.pools.open()
    try:
        done = await cancel_workflow(pool, workflow_id)
    except WorkflowNotFoundError as exc:
        raise ApiError(404, "not_found", str(exc), field="workflow") from exc
    message = (
        f"Cancelled workflow {workflow_id}: {plural(done.cancelled, 'step')} cancelled, "
        f"{plural(done.requested, 'running step')} asked to stop."
    )
    return flash_redirect(request, form, message)


async def workflow_retry_action(ctx: WebContext, request: Request) -> Response:
    """Runs the form's failed ``step`` of ``workflow`` again."""
    form = await read_form(request)
    refusal = refuse(ctx, request, form)
    if refusal is not None:
        return refusal
    workflow_id = _workflow_id(form)
    step = form.get("step")
    if not step:
        raise bad("step", "step: missing")
    pool = await ctx.pools.open()
    try:
        await retry_step(pool, workflow_id, step)
    except WorkflowNotFoundError as exc:
        raise ApiError(404, "not_found", str(exc), field="workflow") from exc
    except UnknownStepError as exc:
        raise ApiError(404, "not_found", str(exc), field="step") from exc
    except (WorkflowClosedError, StepNotRetryableError) as exc:
        raise ApiError(409, "conflict", str(exc), field="step") from exc
    return flash_redirect(request, form, f"Retrying step {step!r}.")
