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

import json
import uuid
from collections.abc import Coroutine, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol, overload

from ._connections import AnyConnection, AsyncConnectionLike, Rows, SyncConnectionLike
from ._ids import new_job_ids
from ._validate import Duration, check_text, to_timedelta
from ._workflow_io import link, run_checked
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
    WorkflowStatus,
    WorkflowStepStatus,
    WorkflowSummary,
    check_graph,
    check_limits,
    prepare,
)
from .builder import JobBuilder
from .errors import ConfigurationError
from .sql import query

if TYPE_CHECKING:
    from .codec import Codec


class TypedJob(Protocol):
    """A job whose declared result type decodes its steps' results (a ``NamedJob``)."""

    @property
    def name(self) -> str:
        """The job's registered name."""
        ...

    @property
    def result_codec(self) -> Codec | None:
        """The codec of its declared result type (None: plain JSON)."""
        ...


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


@overload
def add_steps(
    conn: SyncConnectionLike,
    workflow_id: uuid.UUID,
    steps: Iterable[Step],
    *,
    limits: Mapping[str, int] | None = None,
) -> dict[str, uuid.UUID]: ...


@overload
def add_steps(
    conn: AsyncConnectionLike,
    workflow_id: uuid.UUID,
    steps: Iterable[Step],
    *,
    limits: Mapping[str, int] | None = None,
) -> Coroutine[Any, Any, dict[str, uuid.UUID]]: ...


def add_steps(
    conn: AnyConnection,
    workflow_id: uuid.UUID,
    steps: Iterable[Step],
    *,
    limits: Mapping[str, int] | None = None,
) -> dict[str, uuid.UUID] | Coroutine[Any, Any, dict[str, uuid.UUID]]:
    """Adds steps to a workflow that is neither cancelled nor finished, in the caller's
    transaction and in one round trip; their parents may be new steps or steps it already
    has (a parent that has already ended counts as it ended). ``limits`` sets (or replaces)
    groups' ``max_running``. The workflow's row stays locked until that transaction ends, so
    keep it short. Returns each new step's job id, by step name.

    Raises:
        WorkflowNotFoundError: no such workflow.
        WorkflowClosedError: the workflow was cancelled or has finished.
        DuplicateStepError: two steps, new or old, have one name.
        UnknownStepError: a new step runs after a step the workflow does not have.
        WorkflowCycleError: the new steps' dependencies form a cycle.
    """
    from ._workflow_spec import check_workflow_id

    checked_id = check_workflow_id(workflow_id)
    checked = list(steps)
    if not checked:
        raise ConfigurationError("add_steps() needs at least one step")
    for s in checked:
        if not isinstance(s, Step):
            raise ConfigurationError(f"add_steps() takes Step objects, got {s!r}")
    check_graph(checked, complete=False)
    prepared = prepare(
        checked_id,
        checked,
        check_limits(limits or {}),
        create=False,
        name="",
        retain_for=None,
    )
    return link(conn, prepared, prepared.step_ids)


@dataclass(frozen=True, kw_only=True)
class ParentResult:
    """A parent of a running step and how it ended."""

    step: str
    job_name: str
    state: StepState
    result: Any
    """What it returned (decoded, as its job's declared type when ``jobs`` names it), or None
    unless it completed."""


def _decoder(jobs: Iterable[TypedJob]) -> Any:
    by_name = {j.name: j for j in jobs}

    def decode(rows: Rows) -> list[ParentResult]:
        out = []
        for step, job_name, state, text in rows:
            value: Any = None
            if text is not None:
                named = by_name.get(job_name)
                codec = None if named is None else named.result_codec
                value = (
                    json.loads(text)
                    if codec is None
                    else codec.decode(text, what=f"result of step {step!r} ({job_name!r})")
                )
            out.append(ParentResult(step=step, job_name=job_name, state=state, result=value))
        return out

    return decode


def _first_bool(rows: Rows) -> bool:
    return bool(rows[0][0])


def _as_dict(parents: list[ParentResult]) -> dict[str, Any]:
    return {p.step: p.result for p in parents if p.state == "completed"}


async def _as_dict_later(pending: Coroutine[Any, Any, list[ParentResult]]) -> dict[str, Any]:
    return _as_dict(await pending)


@dataclass(frozen=True, kw_only=True)
class WorkflowContext:
    """What a running step knows of its workflow (``current_job.workflow``)."""

    id: uuid.UUID
    """The workflow's id."""
    step: str
    """This step's name."""

    @overload
    def parents(
        self, conn: SyncConnectionLike, *, jobs: Iterable[TypedJob] = ()
    ) -> list[ParentResult]: ...

    @overload
    def parents(
        self, conn: AsyncConnectionLike, *, jobs: Iterable[TypedJob] = ()
    ) -> Coroutine[Any, Any, list[ParentResult]]: ...

    def parents(
        self, conn: AnyConnection, *, jobs: Iterable[TypedJob] = ()
    ) -> list[ParentResult] | Coroutine[Any, Any, list[ParentResult]]:
        """This step's parents (by name) and how each ended. A parent's result is decoded as
        its job's declared return type when its job is among ``jobs``, else as plain JSON.

        Raises:
            PayloadError: a result does not validate as its job's declared type.
        """
        params = {"workflow_id": self.id, "step": self.step}
        return run_checked(conn, query("workflow_parent_results"), params, _decoder(jobs))

    @overload
    def parent_results(
        self, conn: SyncConnectionLike, *, jobs: Iterable[TypedJob] = ()
    ) -> dict[str, Any]: ...

    @overload
    def parent_results(
        self, conn: AsyncConnectionLike, *, jobs: Iterable[TypedJob] = ()
    ) -> Coroutine[Any, Any, dict[str, Any]]: ...

    def parent_results(
        self, conn: AnyConnection, *, jobs: Iterable[TypedJob] = ()
    ) -> dict[str, Any] | Coroutine[Any, Any, dict[str, Any]]:
        """The results of this step's parents that completed, by step name (a skipped, failed
        or cancelled parent has no entry); decoded as in :meth:`parents`."""
        found = self.parents(conn, jobs=jobs)
        if isinstance(found, list):
            return _as_dict(found)
        return _as_dict_later(found)

    @overload
    def skip(self, conn: SyncConnectionLike, reason: str) -> bool: ...

    @overload
    def skip(self, conn: AsyncConnectionLike, reason: str) -> Coroutine[Any, Any, bool]: ...

    def skip(self, conn: AnyConnection, reason: str) -> bool | Coroutine[Any, Any, bool]:
        """Makes this step end as ``skipped`` (with ``reason``) instead of ``completed`` when it
        completes: a conditional step deciding it has nothing to do. Its dependents treat it as
        completed without a result. Call it in the transaction the step completes in
        (``complete(conn=tx)``), so that it counts only if that transaction commits. Returns
        False (and changes nothing) if the step is not running (released and not ended)."""
        params = {"workflow_id": self.id, "step": self.step, "reason": check_text("reason", reason)}
        return run_checked(conn, query("workflow_skip_self"), params, _first_bool)

    @overload
    def add(
        self,
        conn: SyncConnectionLike,
        steps: Iterable[Step],
        *,
        limits: Mapping[str, int] | None = None,
    ) -> dict[str, uuid.UUID]: ...

    @overload
    def add(
        self,
        conn: AsyncConnectionLike,
        steps: Iterable[Step],
        *,
        limits: Mapping[str, int] | None = None,
    ) -> Coroutine[Any, Any, dict[str, uuid.UUID]]: ...

    def add(
        self,
        conn: AnyConnection,
        steps: Iterable[Step],
        *,
        limits: Mapping[str, int] | None = None,
    ) -> dict[str, uuid.UUID] | Coroutine[Any, Any, dict[str, uuid.UUID]]:
        """Adds steps to this workflow (dynamic fan-out), in ``conn``'s transaction: pass the
        transaction the step completes in (``complete(conn=tx)``) so that the new steps exist
        if, and only if, this step completes. See :func:`add_steps`."""
        return add_steps(conn, self.id, steps, limits=limits)


def context_of(headers: Mapping[str, str]) -> WorkflowContext | None:
    """The workflow a running job (by its headers) is a step of; None if it is none's."""
    value = headers.get(WORKFLOW_HEADER)
    step = headers.get(STEP_HEADER)
    if value is None or step is None:
        return None
    try:
        return WorkflowContext(id=uuid.UUID(value), step=step)
    except ValueError:
        return None
