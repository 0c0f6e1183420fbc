"""Workflows: graphs of steps (jobs) with dependencies, fan-out, fan-in joins and per-step
policies when a parent fails.

::

    from sqlxmq_py.workflow import Workflow

    wf = Workflow("etl")
    wf.add("extract", extract.builder().set_json(source))
    wf.add("t1", transform.builder().set_json(1), after=["extract"])
    wf.add("t2", transform.builder().set_json(2), after=["extract"])
    wf.add("load", load.builder(), after=["t1", "t2"], on_parent_failure="skip")
    spawned = wf.spawn(conn)

Every step is an ordinary job, spawned with the workflow in the caller's transaction and in
one round trip, and parked until its parents have ended; its workflow then releases it, once,
under the workflow row's lock (two parents of a join ending at the same instant on two runners
release it once). A running step reads its parents' results and adds steps to its own workflow
through ``current_job.workflow`` (:class:`WorkflowContext`; ``None`` outside a workflow).

When a parent fails for good or is cancelled, a step's ``on_parent_failure`` decides:

- ``cancel`` (the default): the step is cancelled, and its own dependents apply their policies
  to it in turn;
- ``skip``: the step is skipped, and its dependents treat it as completed without a result;
- ``run``: the step runs once every parent has ended, whatever the outcome (its
  ``parent_results`` hold the parents that completed).

A failed step can be retried (``sqlxmq_py.admin.retry_step``): the steps it cancelled or
skipped wait for it again and run once it succeeds; the rest of the workflow is not held up
meanwhile. Conditional steps are added by the step that decides on them
(``current_job.workflow.add``), or skip themselves (``current_job.workflow.skip``: the step
ends as skipped, and its dependents treat it as completed without a result). Steps of a
group run at most ``max_running`` at once (:meth:`Workflow.limit`, or ``limits=`` when a
running step adds steps): a dynamic fan-out bounded per workflow. See
``sqlxmq_py.admin.workflow_status`` for the graph with each step's state, and
``cancel_workflow`` to cancel it all.
"""

from __future__ import annotations

import uuid
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, overload

from ._connections import AnyConnection, AsyncConnectionLike, SyncConnectionLike
from ._ids import new_job_ids
from ._validate import Duration, check_text, to_timedelta
from ._workflow_context import ParentResult, TypedJob, WorkflowContext, context_of
from ._workflow_io import add_steps, link
from ._workflow_spec import (
    STEP_HEADER,
    WORKFLOW_HEADER,
    DuplicateStepError,
    ParentFailurePolicy,
    Step,
    StepNotRetryableError,
    StepState,
    UnknownStepError,
    WorkflowClosedError,
    WorkflowCycleError,
    WorkflowError,
    WorkflowNotFoundError,
    check_graph,
    check_limits,
    prepare,
)
from ._workflow_status import WorkflowStatus, WorkflowStepStatus, WorkflowSummary
from .builder import JobBuilder
from .errors import ConfigurationError

__all__ = [
    "DEFAULT_RETAIN_FOR",
    "STEP_HEADER",
    "WORKFLOW_HEADER",
    "DuplicateStepError",
    "ParentFailurePolicy",
    "ParentResult",
    "SpawnedWorkflow",
    "Step",
    "StepNotRetryableError",
    "StepState",
    "TypedJob",
    "UnknownStepError",
    "Workflow",
    "WorkflowClosedError",
    "WorkflowContext",
    "WorkflowCycleError",
    "WorkflowError",
    "WorkflowNotFoundError",
    "WorkflowStatus",
    "WorkflowStepStatus",
    "WorkflowSummary",
    "add_steps",
    "context_of",
]

DEFAULT_RETAIN_FOR = timedelta(days=7)
"""How long a finished workflow (its steps and their results) is kept by default."""


@dataclass(frozen=True, kw_only=True)
class SpawnedWorkflow:
    """What :meth:`Workflow.spawn` returns."""

    id: uuid.UUID
    """The workflow's id."""
    step_ids: dict[str, uuid.UUID]
    """Each step's job id, by step name."""


class Workflow:
    """A workflow to spawn: its steps and its groups' limits. Mutable: :meth:`add` and
    :meth:`limit` change it; :meth:`spawn` leaves it as it is, so it can be spawned again.

    Args:
        name: a label shown by status, CLI and dashboard (need not be unique).
        retain_for: how long the workflow, with its steps' results, is kept after it finishes
            (7 days by default). Steps' jobs not kept in the history at all (``retain_for`` on
            their builder) are kept this long, so that their results reach their dependents.
    """

    __slots__ = ("_limits", "_name", "_retain_for", "_steps")

    def __init__(self, name: str, *, retain_for: Duration = DEFAULT_RETAIN_FOR) -> None:
        """An empty workflow."""
        self._name = check_text("workflow name", name)
        self._retain_for = to_timedelta("retain_for", retain_for, allow_zero=False)
        self._steps: dict[str, Step] = {}
        self._limits: dict[str, int] = {}

    @property
    def name(self) -> str:
        """The workflow's label."""
        return self._name

    @property
    def steps(self) -> list[Step]:
        """The steps added so far, in order."""
        return list(self._steps.values())

    def __repr__(self) -> str:
        return f"Workflow({self._name!r}, steps={list(self._steps)!r})"

    def add(
        self,
        name: str,
        builder: JobBuilder[Any],
        *,
        after: Iterable[str] = (),
        on_parent_failure: ParentFailurePolicy = "cancel",
        group: str | None = None,
    ) -> str:
        """Adds a step run by ``builder``'s job once the steps named in ``after`` have ended
        (see the module's documentation for ``on_parent_failure``). Returns ``name``, handy
        for ``after`` lists.

        Raises:
            DuplicateStepError: the workflow already has a step called ``name``.
            ConfigurationError: an invalid option, or a builder with a job key, parents
                (``set_after``), ``ordered`` or a commit interval.
        """
        if isinstance(after, str):
            raise ConfigurationError(
                f"after of step {name!r} takes a list of step names, not one string"
            )
        step = Step(
            name=name,
            builder=builder,
            after=tuple(after),
            on_parent_failure=on_parent_failure,
            group=group,
        )
        if name in self._steps:
            raise DuplicateStepError(f"workflow {self._name!r} already has a step named {name!r}")
        self._steps[name] = step
        return name

    def limit(self, group: str, max_running: int) -> Workflow:
        """Runs at most ``max_running`` steps of ``group`` at once (steps are released in
        the order they were added). Returns the workflow."""
        self._limits.update(check_limits({group: max_running}))
        return self

    @overload
    def spawn(self, conn: SyncConnectionLike) -> SpawnedWorkflow: ...

    @overload
    def spawn(self, conn: AsyncConnectionLike) -> Coroutine[Any, Any, SpawnedWorkflow]: ...

    def spawn(self, conn: AnyConnection) -> SpawnedWorkflow | Coroutine[Any, Any, SpawnedWorkflow]:
        """Spawns every step, in the caller's transaction and in one round trip (a rollback
        leaves nothing); the steps without parents are ready at once.

        Raises:
            ConfigurationError: no step.
            UnknownStepError: a step runs after a step the workflow does not have.
            WorkflowCycleError: the dependencies form a cycle.
        """
        steps = list(self._steps.values())
        if not steps:
            raise ConfigurationError(f"workflow {self._name!r} has no step to spawn")
        check_graph(steps, complete=True)
        (workflow_id,) = new_job_ids(1)
        prepared = prepare(
            workflow_id,
            steps,
            self._limits,
            create=True,
            name=self._name,
            retain_for=self._retain_for,
        )
        return link(conn, prepared, SpawnedWorkflow(id=workflow_id, step_ids=prepared.step_ids))
