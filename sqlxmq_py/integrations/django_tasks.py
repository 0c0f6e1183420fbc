"""Django Tasks backend: ``@task`` functions enqueued as sqlxmq_py jobs on Django's own
connection (so inside ``transaction.atomic()`` they commit or roll back with the block), run by
``sqlxmq worker``, with their results kept in the queue's history.

Django 6 ships the Tasks framework as ``django.tasks``; the ``django-tasks`` package backports
the same interface (``django_tasks``) to older Django versions. This module uses the first that
imports. Settings::

    TASKS = {
        "default": {
            "BACKEND": "sqlxmq_py.integrations.django_tasks.SqlxmqBackend",
            "QUEUES": ["default", "emails"],  # each queue is an sqlxmq channel
            "OPTIONS": {"database": "default", "retries": 0, "retain_for": 86400},
        }
    }

Every task runs as one sqlxmq job named :data:`JOB_NAME`, whose payload holds the task's import
path and arguments; run them with ``sqlxmq worker
sqlxmq_py.integrations.django_tasks:worker_registry`` (which calls ``django.setup()`` with
``DJANGO_SETTINGS_MODULE``).

A task's result id is the sqlxmq job id. The mapping: queue name -> channel name; priority
(-100..100, higher first) -> priority (higher first within the channel group); ``run_after`` ->
the job's run time; the return value -> the kept job result; an exception -> the attempt's
error, whose first line names the exception's class path (``TaskFailed: [worker] path: msg``).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured  # type: ignore[import-untyped]
from django.db import close_old_connections, transaction  # type: ignore[import-untyped]
from django.utils import timezone  # type: ignore[import-untyped]
from django.utils.module_loading import import_string  # type: ignore[import-untyped]

if TYPE_CHECKING:
    from django_tasks import TaskContext, TaskResult, TaskResultStatus
    from django_tasks.backends.base import BaseTaskBackend
    from django_tasks.base import Task, TaskError
    from django_tasks.exceptions import TaskResultDoesNotExist
    from django_tasks.signals import task_enqueued, task_finished, task_started
else:
    try:  # Django 6: the Tasks framework is part of Django
        from django.tasks import TaskContext, TaskResult, TaskResultStatus
        from django.tasks.backends.base import BaseTaskBackend
        from django.tasks.base import Task, TaskError
        from django.tasks.exceptions import TaskResultDoesNotExist
        from django.tasks.signals import task_enqueued, task_finished, task_started
    except ImportError:  # Django 5: the django-tasks backport
        try:
            from django_tasks import TaskContext, TaskResult, TaskResultStatus
            from django_tasks.backends.base import BaseTaskBackend
            from django_tasks.base import Task, TaskError
            from django_tasks.exceptions import TaskResultDoesNotExist
            from django_tasks.signals import task_enqueued, task_finished, task_started
        except ImportError as exc:  # pragma: no cover - exercised with the package missing
            raise ImportError(
                "sqlxmq_py.integrations.django_tasks needs Django 6 (django.tasks) or the "
                "backport: pip install django-tasks"
            ) from exc

from .. import CurrentJob, JobRegistry, _connections, job
from .._connections import Rows
from .._text import safe_text
from ..admin import AttemptError, JobStatus, attempt_errors, job_status
from ..errors import SqlxmqError
from ..sql import query
from ..states import JobState
from .django import django_connection, spawn_in_django

__all__ = [
    "JOB_NAME",
    "SqlxmqBackend",
    "TaskFailed",
    "registry",
    "run_django_task",
    "worker_registry",
]

JOB_NAME = "django_tasks.run"
"""The sqlxmq job every Django task runs as."""

DEFAULT_RETAIN_FOR = timedelta(days=1)
"""How long a finished task's result is kept unless ``OPTIONS["retain_for"]`` says otherwise."""

_OPTIONS = frozenset({"database", "retries", "retain_for"})

_STATUS: dict[JobState, str] = {
    JobState.UNCOMMITTED: "READY",
    JobState.SCHEDULED: "READY",
    JobState.WAITING: "READY",
    JobState.READY: "READY",
    JobState.RETRYING: "READY",
    JobState.RUNNING: "RUNNING",
    JobState.FAILED: "FAILED",
    JobState.CANCELLED: "FAILED",
    JobState.COMPLETED: "SUCCESSFUL",
}
"""Each sqlxmq job state as a Django task status (a retrying task is ready to run again)."""

_FAILED_LINE = re.compile(r"^TaskFailed: \[(?P<worker>[^\]]*)\] (?P<path>[\w.]+)")

_UNKNOWN_ERROR_PATH = f"{SqlxmqError.__module__}.{SqlxmqError.__qualname__}"
"""The class path given to an attempt that ended without the task raising (a lease that
expired, a cancellation, a timeout): sqlxmq recorded only its text."""


def _status(name: str) -> TaskResultStatus:
    """The Django status named ``name`` (READY, RUNNING, FAILED, SUCCESSFUL)."""
    return TaskResultStatus(name)


class TaskFailed(SqlxmqError):
    """A Django task raised (or could not be loaded). The message is ``[worker id] class
    path: message``; the original exception is its cause, so the recorded traceback shows it."""


def _class_path(value: type[BaseException]) -> str:
    return f"{value.__module__}.{value.__qualname__}"


def _worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[-64:]


def _json(value: Any, what: str) -> Any:
    """``value`` as JSON would give it back (tuples become lists); TypeError/ValueError if it
    is not JSON."""
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{what} must be JSON-serialisable: {exc}") from exc


def _parse_id(result_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(result_id))
    except ValueError:
        raise TaskResultDoesNotExist(result_id) from None


def _task_error(error: AttemptError) -> tuple[TaskError, str]:
    """The Django error of one failed attempt, and the worker it ran on ("" if unknown)."""
    first_line = error.error.partition("\n")[0]
    match = _FAILED_LINE.match(first_line)
    if match is None:
        return TaskError(exception_class_path=_UNKNOWN_ERROR_PATH, traceback=error.error), ""
    body = error.error.partition("\n\n")[2] or error.error
    task_error = TaskError(exception_class_path=match["path"], traceback=body)
    return task_error, match["worker"]


def _payload(rows: Rows) -> Mapping[str, Any] | None:
    found = json.loads(rows[0][0]) if rows and rows[0][0] is not None else None
    return found if isinstance(found, Mapping) else None


def _set(result: TaskResult[Any], **values: Any) -> None:
    for name, value in values.items():  # TaskResult is frozen: as Django's backends do
        object.__setattr__(result, name, value)


class SqlxmqBackend(BaseTaskBackend):
    """A Django Tasks backend that enqueues each task as an sqlxmq_py job on Django's
    connection (``OPTIONS["database"]``, default ``"default"``), in its current transaction.

    ``OPTIONS``: ``database`` (the Django database alias of the queue), ``retries`` (attempts
    after a failed first one, default 0: a task that raises is FAILED, as Django's own
    backends have it), ``retain_for`` (seconds or a timedelta a finished task's result is kept
    for ``get_result``, default a day).
    """

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        unknown = sorted(set(self.options) - _OPTIONS)
        if unknown:
            raise ImproperlyConfigured(
                f"TASKS[{alias!r}]['OPTIONS'] has unknown keys {unknown}: the sqlxmq backend "
                f"takes {sorted(_OPTIONS)}"
            )
        self.database: str = self.options.get("database", "default")
        self.retries: int = self.options.get("retries", 0)
        self.retain_for: timedelta | float = self.options.get("retain_for", DEFAULT_RETAIN_FOR)
        # checks the options now, as the builder would at the first enqueue
        run_django_task.builder().set_retries(self.retries).set_retain_for(self.retain_for)

    def enqueue(self, task: Task[Any, Any], args: Any, kwargs: Any) -> TaskResult[Any]:
        """Spawns the task as an sqlxmq job in the current transaction of Django's connection
        and returns its READY result (its id is the job id)."""
        self.validate_task(task)
        payload = {
            "task": task.module_path,
            "backend": self.alias,
            "args": _json(list(args), "a task's args"),
            "kwargs": _json(dict(kwargs), "a task's kwargs"),
        }
        builder = (
            run_django_task.builder()
            .set_json(payload)
            .set_channel_name(task.queue_name)
            .set_priority(task.priority)
            .set_retries(self.retries)
            .set_retain_for(self.retain_for)
        )
        if task.run_after is not None:
            run_after = task.run_after
            if timezone.is_naive(run_after):  # allowed by Django only with USE_TZ = False
                run_after = timezone.make_aware(run_after)
            builder.set_run_at(run_after)
        job_id = spawn_in_django(builder, using=self.database)
        result: TaskResult[Any] = TaskResult(
            task=task,
            id=str(job_id),
            status=_status("READY"),
            enqueued_at=timezone.now(),
            started_at=None,
            finished_at=None,
            last_attempted_at=None,
            args=payload["args"],
            kwargs=payload["kwargs"],
            backend=self.alias,
            errors=[],
            worker_ids=[],
        )
        task_enqueued.send(type(self), task_result=result)
        return result

    def get_result(self, result_id: str) -> TaskResult[Any]:
        """The task's result as the queue has it now, read on Django's connection.

        Raises:
            ImportError: the task's function is no longer where it was enqueued from.
            TaskResultDoesNotExist: no task of this id is queued or kept (its result was kept
                for ``retain_for`` and has been purged, or it never existed).
        """
        job_id = _parse_id(result_id)
        with transaction.mark_for_rollback_on_error(self.database):
            conn = django_connection(self.database)
            status = job_status(conn, job_id)
            if status is None or status.name != JOB_NAME:
                raise TaskResultDoesNotExist(result_id)
            errors = attempt_errors(conn, job_id) if status.attempts else []
            payload = _connections.run(conn, query("payload_json"), {"id": job_id}, _payload)
        if payload is None:
            raise TaskResultDoesNotExist(result_id)
        return self._result(status, payload, errors)

    def _result(
        self, status: JobStatus, payload: Mapping[str, Any], attempts: list[AttemptError]
    ) -> TaskResult[Any]:
        task = _load_task(str(payload["task"])).using(
            priority=status.priority, queue_name=status.channel_name, backend=self.alias
        )
        errors: list[TaskError] = []
        worker_ids: list[str] = []
        last_attempted_at: datetime | None = None
        for attempt in attempts:
            task_error, worker = _task_error(attempt)
            errors.append(task_error)
            worker_ids.append(worker)
            last_attempted_at = attempt.at
        state = _status(_STATUS[status.state])
        started_at = finished_at = None
        value = None
        if state == "SUCCESSFUL" and isinstance(status.result, Mapping):
            value = status.result.get("return_value")
            started_at = datetime.fromisoformat(status.result["started_at"])
            worker_ids.append(str(status.result.get("worker_id", "")))
            last_attempted_at = started_at
        if state in ("SUCCESSFUL", "FAILED"):
            finished_at = status.finished_at or last_attempted_at
        worker_ids += [""] * (status.attempts - len(worker_ids))
        result: TaskResult[Any] = TaskResult(
            task=task,
            id=str(status.id),
            status=state,
            enqueued_at=status.created_at,
            started_at=started_at,
            finished_at=finished_at,
            last_attempted_at=last_attempted_at,
            args=list(payload.get("args", [])),
            kwargs=dict(payload.get("kwargs", {})),
            backend=self.alias,
            errors=errors,
            worker_ids=worker_ids,
        )
        _set(result, _return_value=value)
        return result


def _load_task(path: str) -> Task[Any, Any]:
    """The ``@task`` at ``path``.

    Raises:
        ImportError: nothing is there; TypeError: it is not a Django task.
    """
    found = import_string(path)
    if not isinstance(found, Task):
        raise TypeError(f"{path} is a {type(found).__name__}, not a Django task (@task)")
    return found


def _call_in_thread(func: Callable[..., Any], args: list[Any], kwargs: dict[str, Any]) -> Any:
    """Calls a sync task in a worker thread with fresh Django connections, as Django does
    around a request (a thread's connection may have expired since its last task)."""
    close_old_connections()
    try:
        return func(*args, **kwargs)
    finally:
        close_old_connections()


@job(name=JOB_NAME, retries=0, retain_for=DEFAULT_RETAIN_FOR)
async def run_django_task(current_job: CurrentJob) -> dict[str, Any]:
    """Runs one Django task: imports it by path, calls it (a sync function in a thread, a
    coroutine function on the loop) and returns its JSON return value, kept as the job result
    with when and where it ran.

    Raises:
        TaskFailed: the task raised, could not be loaded, or returned something that is not
            JSON; its cause is the original exception.
    """
    worker = _worker_id()
    started_at = timezone.now()
    payload = current_job.json()
    context: TaskResult[Any] | None = None
    try:
        # the backend it was enqueued on (``Task.using(backend=...)``), not the decorator's
        task = _load_task(str(payload["task"])).using(backend=str(payload["backend"]))
        backend = task.get_backend()
        if not isinstance(backend, SqlxmqBackend):
            raise TypeError(f"task {task.module_path} runs on {type(backend).__name__}")
        args, kwargs = list(payload["args"]), dict(payload["kwargs"])
        context = TaskResult(
            task=task,
            id=str(current_job.id),
            status=_status("RUNNING"),
            enqueued_at=None,
            started_at=started_at,
            finished_at=None,
            last_attempted_at=started_at,
            args=args,
            kwargs=kwargs,
            backend=backend.alias,
            errors=[],
            worker_ids=[""] * (current_job.attempt - 1) + [worker],
        )
        task_started.send(SqlxmqBackend, task_result=context)
        if task.takes_context:
            args = [TaskContext(task_result=context), *args]
        if asyncio.iscoroutinefunction(task.func):
            value = await task.func(*args, **kwargs)
        else:
            value = await asyncio.to_thread(_call_in_thread, task.func, args, kwargs)
        value = _json(value, "a task's return value")
    except (asyncio.CancelledError, KeyboardInterrupt):
        raise  # the runner cancelled the attempt (timeout, cancel, shutdown): it records that
    except BaseException as exc:
        if context is not None:
            _set(context, status=_status("FAILED"), finished_at=timezone.now())
            task_finished.send(SqlxmqBackend, task_result=context)
        raise TaskFailed(f"[{worker}] {_class_path(type(exc))}: {safe_text(exc, 2000)}") from exc
    _set(context, status=_status("SUCCESSFUL"), finished_at=timezone.now())
    _set(context, _return_value=value)
    task_finished.send(SqlxmqBackend, task_result=context)
    return {"return_value": value, "started_at": started_at.isoformat(), "worker_id": worker}


registry = JobRegistry([run_django_task])
"""The registry of a runner for Django tasks (Django must be set up before it runs)."""


def worker_registry() -> JobRegistry:
    """``django.setup()`` (settings from ``DJANGO_SETTINGS_MODULE``), then :data:`registry`:
    for ``sqlxmq worker sqlxmq_py.integrations.django_tasks:worker_registry``."""
    import django  # type: ignore[import-untyped]

    django.setup()
    return registry
