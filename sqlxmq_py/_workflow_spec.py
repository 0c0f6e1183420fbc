"""The pure half of workflows: steps, graph checks, the typed errors, preparing builders and
building the statements' parameters. Reading status rows is in ``_workflow_status.py``, the
I/O in ``_workflow_io.py``."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal, get_args

import psycopg

from ._ids import new_job_ids
from ._validate import check_text
from .builder import JobBuilder
from .errors import ConfigurationError, SqlxmqError

__all__ = [
    "STEP_HEADER",
    "WORKFLOW_HEADER",
    "DuplicateStepError",
    "ParentFailurePolicy",
    "Prepared",
    "Step",
    "StepNotRetryableError",
    "StepState",
    "UnknownStepError",
    "WorkflowClosedError",
    "WorkflowCycleError",
    "WorkflowError",
    "WorkflowNotFoundError",
    "check_graph",
    "check_limits",
    "check_workflow_id",
    "prepare",
    "workflow_error",
]

WORKFLOW_HEADER = "sqlxmq-workflow"
"""The header that tells a step's job which workflow it belongs to."""
STEP_HEADER = "sqlxmq-workflow-step"
"""The header that tells a step's job its step name."""

ParentFailurePolicy = Literal["cancel", "skip", "run"]
"""What a step does when a parent fails for good or is cancelled: ``cancel`` it (and, by
their own policies, its dependents), ``skip`` it (its dependents treat it as completed without
a result), or ``run`` it once every parent has ended."""
StepState = Literal["waiting", "pending", "completed", "failed", "cancelled", "skipped"]


class WorkflowError(SqlxmqError):
    """Base class of the errors about workflows (``sqlxmq_py.workflow``)."""

    __module__ = "sqlxmq_py.workflow"


class WorkflowNotFoundError(WorkflowError, LookupError):
    """No workflow has this id (it never existed, its spawn rolled back, or it expired). The
    transaction that asked is aborted: roll it back."""

    __module__ = "sqlxmq_py.workflow"


class WorkflowClosedError(WorkflowError):
    """Steps were added to (or retried in) a workflow that was cancelled or has finished. The
    transaction that asked is aborted: roll it back."""

    __module__ = "sqlxmq_py.workflow"


class DuplicateStepError(WorkflowError, ConfigurationError):
    """Two steps of one workflow have the same name (the message names it)."""

    __module__ = "sqlxmq_py.workflow"


class UnknownStepError(WorkflowError, ConfigurationError, LookupError):
    """A step names a parent that the workflow does not have, or an admin call names a step it
    does not have (the message names both)."""

    __module__ = "sqlxmq_py.workflow"


class WorkflowCycleError(WorkflowError, ConfigurationError):
    """The steps' dependencies form a cycle, so none of its steps could ever run (the message
    names the steps of the cycle)."""

    __module__ = "sqlxmq_py.workflow"


class StepNotRetryableError(WorkflowError):
    """``retry_step`` named a step that has not failed, or whose failed job was purged. The
    transaction that asked is aborted: roll it back."""

    __module__ = "sqlxmq_py.workflow"


_ERRORS: dict[str, type[WorkflowError]] = {
    "MQW01": WorkflowNotFoundError,
    "MQW02": WorkflowClosedError,
    "MQW03": DuplicateStepError,
    "MQW04": UnknownStepError,
    "MQW05": StepNotRetryableError,
}


def workflow_error(exc: psycopg.Error) -> WorkflowError | None:
    """The typed error for a refusal raised by the workflow functions in SQL, else None."""
    kind = _ERRORS.get(exc.sqlstate or "")
    if kind is None:
        return None
    return kind(exc.diag.message_primary or str(exc))


@dataclass(frozen=True, kw_only=True)
class Step:
    """One step to add to a workflow: a name unique in the workflow, the job that runs it, the
    steps it runs after, what it does when one of them fails, and its group (steps of a group
    run at most ``max_running`` at once, see ``Workflow.limit``)."""

    name: str
    builder: JobBuilder[Any]
    after: tuple[str, ...] = ()
    on_parent_failure: ParentFailurePolicy = "cancel"
    group: str | None = None

    def __post_init__(self) -> None:
        check_text("step name", self.name)
        if not self.name:
            raise ConfigurationError("a step name must not be empty")
        after: object = self.after
        if isinstance(after, str):
            raise ConfigurationError(
                f"after of step {self.name!r} takes a list of step names, not one string"
            )
        object.__setattr__(self, "after", tuple(self.after))
        for parent in self.after:
            if not isinstance(parent, str):
                raise ConfigurationError(
                    f"after of step {self.name!r} takes step names, got {parent!r}"
                )
        if self.on_parent_failure not in get_args(ParentFailurePolicy):
            raise ConfigurationError(
                f"on_parent_failure of step {self.name!r} must be 'cancel', 'skip' or 'run', "
                f"got {self.on_parent_failure!r}"
            )
        if self.group is not None:
            check_text("step group", self.group)
        _check_builder(self.name, self.builder)


def _check_builder(step: str, builder: object) -> None:
    if not isinstance(builder, JobBuilder):
        raise ConfigurationError(
            f"step {step!r} takes a JobBuilder (NamedJob.builder()), got {builder!r}"
        )
    job = builder.to_write()
    refused = {
        "a job key or throttle": job.job_key is not None,
        "parents (set_after; use after=)": bool(job.after),
        "ordered": job.ordered,
        "a commit interval": job.commit_interval is not None,
    }
    for what, present in refused.items():
        if present:
            raise ConfigurationError(
                f"step {step!r} ({builder.name!r}) cannot have {what}: its workflow releases it"
            )


def check_graph(steps: Sequence[Step], *, complete: bool) -> None:
    """Refuses duplicate names, cycles and, if the steps are the ``complete`` workflow, parents
    that are not among them. (Steps already in a workflow never wait for new ones, so a cycle
    can only be among new steps; parents of steps added to a running workflow are checked in
    SQL, against the steps it has then.)

    Raises:
        DuplicateStepError, UnknownStepError, WorkflowCycleError.
    """
    names: dict[str, Step] = {}
    for s in steps:
        if s.name in names:
            raise DuplicateStepError(f"two steps are named {s.name!r}")
        names[s.name] = s
    for s in steps:
        for parent in s.after:
            if complete and parent not in names:
                raise UnknownStepError(f"step {s.name!r} runs after {parent!r}, which is no step")
            if parent == s.name:
                raise WorkflowCycleError(f"step {s.name!r} runs after itself")
    _check_acyclic(names)


def _check_acyclic(steps: Mapping[str, Step]) -> None:
    # iterative depth-first search: 0 unseen, 1 on the current path, 2 done
    mark = dict.fromkeys(steps, 0)
    for root in steps:
        if mark[root]:
            continue
        path: list[str] = [root]
        stack = [iter(p for p in steps[root].after if p in steps)]
        mark[root] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                mark[path.pop()] = 2
                stack.pop()
            elif mark[nxt] == 1:
                cycle = [*path[path.index(nxt) :], nxt]
                raise WorkflowCycleError(
                    "the steps' dependencies form a cycle: " + " -> ".join(reversed(cycle))
                )
            elif mark[nxt] == 0:
                mark[nxt] = 1
                path.append(nxt)
                stack.append(iter(p for p in steps[nxt].after if p in steps))


def check_workflow_id(workflow_id: object) -> uuid.UUID:
    """Refuses what is not a workflow id."""
    if not isinstance(workflow_id, uuid.UUID):
        raise ConfigurationError(f"workflow_id must be a uuid.UUID, got {workflow_id!r}")
    return workflow_id


def check_limits(limits: Mapping[str, int]) -> dict[str, int]:
    """Refuses group limits that are not positive integers."""
    checked: dict[str, int] = {}
    for group, n in limits.items():
        check_text("step group", group)
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigurationError(
                f"max_running of group {group!r} must be a positive int, got {n!r}"
            )
        checked[group] = n
    return checked


@dataclass(frozen=True, kw_only=True)
class Prepared:
    """Builders ready for the usual spawn statement, and the parameters that link them."""

    builders: list[JobBuilder[Any]]
    step_ids: dict[str, uuid.UUID]
    params: dict[str, object]


def prepare(
    workflow_id: uuid.UUID,
    steps: Sequence[Step],
    limits: Mapping[str, int],
    *,
    create: bool,
    name: str,
    retain_for: timedelta | None,
) -> Prepared:
    """Copies of the builders (the caller's are left as they were) with their ids, the
    workflow's headers and, for jobs not kept in the history (whose results could then not
    reach their dependents), ``retain_for`` (None: ``workflow_link`` sets the workflow's)."""
    fresh = iter(new_job_ids(len(steps)))
    builders: list[JobBuilder[Any]] = []
    ids: dict[str, uuid.UUID] = {}
    for s in steps:
        b = s.builder.copy()
        job_id = b.to_write().id or next(fresh)
        b.set_id(job_id)
        b.set_header(WORKFLOW_HEADER, str(workflow_id))
        b.set_header(STEP_HEADER, s.name)
        if retain_for is not None and not b.to_write().retain_for:
            b.set_retain_for(retain_for)
        builders.append(b)
        ids[s.name] = job_id
    edges = [(s.name, parent) for s in steps for parent in s.after]
    params: dict[str, object] = {
        "workflow_id": workflow_id,
        "create": create,
        "name": name,
        "retain_for": retain_for,
        "steps": [s.name for s in steps],
        "job_ids": [ids[s.name] for s in steps],
        "job_names": [s.builder.name for s in steps],
        "policies": [s.on_parent_failure for s in steps],
        "groups": [s.group for s in steps],
        "children": [c for c, _ in edges],
        "parents": [p for _, p in edges],
        "limit_groups": list(limits),
        "limits": list(limits.values()),
    }
    return Prepared(builders=builders, step_ids=ids, params=params)
