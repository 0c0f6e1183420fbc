"""What a running step knows of its workflow (``current_job.workflow``): its id and step name,
its parents' results (decoded as their jobs' declared types when asked), adding steps, and
skipping itself."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, overload

from ._connections import AnyConnection, AsyncConnectionLike, Rows, SyncConnectionLike
from ._validate import check_text
from ._workflow_io import add_steps, run_checked
from ._workflow_spec import STEP_HEADER, WORKFLOW_HEADER, Step, StepState
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


__all__ = ["ParentResult", "TypedJob", "WorkflowContext", "context_of"]


@dataclass(frozen=True, kw_only=True)
class ParentResult:
    """A parent of a running step and how it ended."""

    step: str
    job_name: str
    state: StepState
    result: Any
    """What it returned (decoded, as its job's declared type when ``jobs`` names it), or None
    unless it completed."""


def _decoder(jobs: Iterable[TypedJob]) -> Callable[[Rows], list[ParentResult]]:
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
