"""``sqlxmq workflows``, ``workflow``, ``workflow-cancel`` and ``workflow-retry``: the recent
workflows, a workflow's graph with each step's state, cancelling it, retrying a failed step."""

from __future__ import annotations

import argparse
import uuid

from ..admin import cancel_workflow, list_workflows, retry_step, workflow_status
from ..workflow import WorkflowStatus
from ._common import (
    EXIT_ERROR,
    EXIT_OK,
    CliError,
    Commands,
    Context,
    add_command,
    positive_int,
)
from ._output import first_line, human_time, jsonable, print_json, render_table

__all__ = ["graph_text", "register"]


def _workflow_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid workflow id {text!r}: expected a UUID like "
            "0192f5d2-7c1e-7a41-9b6e-3c0d1f2a4b5c"
        ) from None


def register(commands: Commands) -> None:
    """Adds the ``workflows``, ``workflow``, ``workflow-cancel`` and ``workflow-retry``
    commands."""
    list_cmd = add_command(
        commands,
        "workflows",
        summary="list the newest workflows with their steps counted by state",
        description=(
            "Lists workflows, newest first: id, name, state, and how many steps wait, run\n"
            "(ready, running or retrying), completed, failed, were cancelled or skipped."
        ),
    )
    list_cmd.add_argument("--name", help="only workflows of this name")
    list_cmd.add_argument(
        "--limit", type=positive_int, default=50, help="at most this many (default 50)"
    )
    list_cmd.set_defaults(handler=run_workflows)

    show = add_command(
        commands,
        "workflow",
        summary="show a workflow as a graph with each step's state",
        description=(
            "Prints a workflow's steps, each indented by its depth in the graph (after its\n"
            "deepest parent), with its state, attempts, parents and error or result."
        ),
    )
    show.add_argument("workflow_id", type=_workflow_id, metavar="ID", help="the workflow id")
    show.set_defaults(handler=run_workflow)

    cancel_cmd = add_command(
        commands,
        "workflow-cancel",
        summary="cancel a whole workflow",
        description=(
            "Cancels a workflow: no step starts any more, steps not running are cancelled\n"
            "at once and running ones are asked to stop."
        ),
    )
    cancel_cmd.add_argument("workflow_id", type=_workflow_id, metavar="ID")
    cancel_cmd.add_argument("--reason", default="workflow cancelled", help="recorded on steps")
    cancel_cmd.set_defaults(handler=run_cancel)

    retry_cmd = add_command(
        commands,
        "workflow-retry",
        summary="retry a failed step of a workflow",
        description=(
            "Runs a failed step again; the steps it cancelled or skipped wait for it again\n"
            "and run once it succeeds."
        ),
    )
    retry_cmd.add_argument("workflow_id", type=_workflow_id, metavar="ID")
    retry_cmd.add_argument("step", metavar="STEP", help="the step's name")
    retry_cmd.set_defaults(handler=run_retry)


def graph_text(status: WorkflowStatus) -> str:
    """The workflow as text: a heading, then a table of its steps in graph order (by depth,
    then in the order they were added), each name indented by its depth."""
    depths = status.depths()
    order = sorted(range(len(status.steps)), key=lambda i: (depths.get(status.steps[i].name, 0), i))
    rows = []
    for i in order:
        s = status.steps[i]
        note = s.error if s.error is not None else (None if s.result is None else repr(s.result))
        rows.append(
            (
                "  " * depths.get(s.name, 0) + s.name,
                s.display,
                s.attempts,
                ", ".join(s.parents) or None,
                None if note is None else first_line(note),
            )
        )
    heading = (
        f"Workflow {status.id} ({status.name}): {status.state}, {len(status.steps)} steps, "
        f"created {human_time(status.created_at)}"
    )
    if status.finished_at is not None:
        heading += f", finished {human_time(status.finished_at)}"
    headers = ["step", "state", "attempts", "after", "error / result"]
    return heading + "\n" + render_table(headers, rows, numeric=[2])


def _status(ctx: Context, workflow_id: uuid.UUID) -> WorkflowStatus:
    with ctx.connect() as conn:
        status = workflow_status(conn, workflow_id)
    if status is None:
        raise CliError(f"no workflow {workflow_id} (it never existed, or it expired)", EXIT_ERROR)
    return status


def run_workflows(ctx: Context, args: argparse.Namespace) -> int:
    """Lists workflows."""
    with ctx.connect() as conn:
        found = list_workflows(conn, name=args.name, limit=args.limit)
    if ctx.json:
        print_json({"workflows": [{**jsonable(w), "state": w.state} for w in found]})
        return EXIT_OK
    if not found:
        print("No workflows.")
        return EXIT_OK
    rows = [
        (
            w.id, w.name, w.state, w.total, w.waiting, w.pending, w.completed, w.failed,
            w.cancelled, w.skipped, human_time(w.created_at),
        )
        for w in found
    ]  # fmt: skip
    headers = [
        "id", "name", "state", "steps", "waiting", "released", "completed", "failed",
        "cancelled", "skipped", "created",
    ]  # fmt: skip
    print(render_table(headers, rows, numeric=range(3, 10)))
    return EXIT_OK


def run_workflow(ctx: Context, args: argparse.Namespace) -> int:
    """Prints a workflow's graph."""
    status = _status(ctx, args.workflow_id)
    if ctx.json:
        print_json({"workflow": status, "state": status.state})
    else:
        print(graph_text(status))
    return EXIT_OK


def run_cancel(ctx: Context, args: argparse.Namespace) -> int:
    """Cancels a workflow."""
    with ctx.connect() as conn:
        done = cancel_workflow(conn, args.workflow_id, args.reason)
    if ctx.json:
        print_json(done)
    else:
        print(
            f"cancelled workflow {args.workflow_id}: {done.cancelled} steps cancelled, "
            f"{done.requested} running steps asked to stop"
        )
    return EXIT_OK


def run_retry(ctx: Context, args: argparse.Namespace) -> int:
    """Retries a failed step."""
    with ctx.connect() as conn:
        job_id = retry_step(conn, args.workflow_id, args.step)
    if ctx.json:
        print_json({"workflow_id": args.workflow_id, "step": args.step, "job_id": job_id})
    else:
        print(f"retrying step {args.step} (job {job_id})")
    return EXIT_OK
