"""Django Tasks on sqlxmq_py (the django-tasks backport): ``@task`` functions enqueued inside
``transaction.atomic()``, run by a runner or ``sqlxmq worker``, their results read back."""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from types import ModuleType
from typing import Any, TypeVar

import psycopg
import pytest
from asgiref.sync import sync_to_async
from psycopg_pool import AsyncConnectionPool

from sqlxmq_py import JobFailedError
from sqlxmq_py.admin import job_status
from sqlxmq_py.results import wait_for_result

from ..helpers import Runner, count_jobs
from ..processes import Processes, clean_env

T = TypeVar("T")

WAIT = 30.0


async def in_django(call: Callable[..., T], *args: Any) -> T:
    """Runs a sync Django call off the loop, in the thread Django's async API uses."""
    return await sync_to_async(call, thread_sensitive=True)(*args)


@pytest.fixture
async def tasks(django_db: Any) -> AsyncIterator[ModuleType]:
    """The test tasks module, Django set up on this test's database; Django's connections of
    the thread :func:`in_django` uses are closed afterwards (the next test has its own
    database)."""
    from django.db import connections  # type: ignore[import-untyped]

    from .djangoapp import tasks as module

    try:
        yield module
    finally:
        await in_django(connections.close_all)


def registry() -> Any:
    from sqlxmq_py.integrations.django_tasks import registry

    return registry


def test_a_task_enqueued_in_a_rolled_back_atomic_block_is_dropped(
    django_db: Any, db: psycopg.Connection[Any]
) -> None:
    from django.db import transaction

    from .djangoapp.tasks import add

    def checkout() -> None:
        with transaction.atomic():
            django_db.objects.create(total=7)
            add.enqueue(1, 2)
            raise RuntimeError("card declined")

    with pytest.raises(RuntimeError, match="card declined"):
        checkout()
    assert count_jobs(db) == 0
    with transaction.atomic():
        result = add.enqueue(1, 2)
        assert count_jobs(db) == 0  # not committed yet
    assert count_jobs(db) == 1
    assert result.status == "READY"
    assert add.get_result(result.id).status == "READY"


async def test_a_committed_task_runs_and_its_result_is_successful(
    tasks: ModuleType, db: psycopg.Connection[Any], apool: AsyncConnectionPool[Any], runner: Runner
) -> None:
    from django.db import transaction

    def place_order() -> str:
        with transaction.atomic():
            return str(tasks.add.enqueue(2, b=3).id)

    result_id = await in_django(place_order)
    async with runner(registry()):
        await wait_for_result(apool, uuid.UUID(result_id), timeout=WAIT)
    result = await tasks.add.aget_result(result_id)
    assert result.status == "SUCCESSFUL"
    assert result.return_value == 5
    assert (result.args, result.kwargs) == ([2], {"b": 3})
    assert result.errors == []
    assert result.attempts == 1
    assert result.worker_ids[0]
    assert result.enqueued_at is not None
    assert result.started_at is not None
    assert result.finished_at is not None
    assert result.enqueued_at <= result.finished_at
    assert result.task.func is tasks.add.func


async def test_a_task_that_raises_is_failed_with_its_exception_class(
    tasks: ModuleType, apool: AsyncConnectionPool[Any], runner: Runner
) -> None:
    result = await tasks.decline.aenqueue("no funds")
    async with runner(registry()):
        with pytest.raises(JobFailedError, match="CardDeclined"):
            await wait_for_result(apool, uuid.UUID(result.id), timeout=WAIT)
    await result.arefresh()
    assert result.status == "FAILED"
    assert result.attempts == 1  # retries=0 in the test settings: failed for good
    (error,) = result.errors
    assert error.exception_class_path == "tests.integrations.djangoapp.tasks.CardDeclined"
    assert error.exception_class is tasks.CardDeclined
    assert "no funds" in error.traceback
    assert "raise CardDeclined(reason)" in error.traceback
    assert result.finished_at is not None
    with pytest.raises(ValueError, match="failed"):
        result.return_value  # noqa: B018


async def test_queue_names_are_channels_and_priorities_carry_over(
    tasks: ModuleType, db: psycopg.Connection[Any], apool: AsyncConnectionPool[Any], runner: Runner
) -> None:
    email = await tasks.record_order.aenqueue(42)  # queue "emails", priority 40
    low = await tasks.add.using(priority=-100).aenqueue(1, 1)
    email_job = job_status(db, uuid.UUID(email.id))
    low_job = job_status(db, uuid.UUID(low.id))
    assert email_job is not None
    assert low_job is not None
    assert (email_job.channel_name, email_job.priority) == ("emails", 40)
    assert (low_job.channel_name, low_job.priority) == ("default", -100)
    async with runner(registry(), channel_names=["emails"]):
        kept = await wait_for_result(apool, uuid.UUID(email.id), timeout=WAIT)
    order_id = kept["return_value"]  # the job result keeps the return value, with its run
    row = db.execute("SELECT total FROM djangoapp_order WHERE id = %s", (order_id,))
    assert row.fetchone() == (42,)  # written through the ORM in the worker thread
    assert (await tasks.record_order.aget_result(email.id)).return_value == order_id
    unrun = await tasks.add.aget_result(low.id)
    assert unrun.status == "READY"
    assert unrun.task.priority == -100
    assert unrun.task.queue_name == "default"


async def test_run_after_schedules_the_job(tasks: ModuleType, db: psycopg.Connection[Any]) -> None:
    from django.utils import timezone  # type: ignore[import-untyped]

    later = timezone.now() + timedelta(hours=1)
    result = await tasks.add.using(run_after=later).aenqueue(1, 2)
    status = job_status(db, uuid.UUID(result.id))
    assert status is not None
    assert status.state == "scheduled"
    assert status.run_at == later
    assert (await tasks.add.aget_result(result.id)).status == "READY"


def test_an_unknown_queue_name_is_an_invalid_task(django_db: Any) -> None:
    from django_tasks.exceptions import InvalidTaskError

    from .djangoapp.tasks import add

    with pytest.raises(InvalidTaskError, match="nowhere"):
        add.using(queue_name="nowhere")


def test_an_unknown_result_id_does_not_exist(django_db: Any) -> None:
    from django_tasks.exceptions import TaskResultDoesNotExist

    from .djangoapp.tasks import add

    for result_id in (str(uuid.uuid4()), "not-a-uuid"):
        with pytest.raises(TaskResultDoesNotExist):
            add.get_result(result_id)


async def test_a_task_gone_at_run_time_fails_with_the_reason_and_the_runner_goes_on(
    tasks: ModuleType,
    db: psycopg.Connection[Any],
    apool: AsyncConnectionPool[Any],
    runner: Runner,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gone = await tasks.doomed.aenqueue()
    monkeypatch.delattr(tasks, "doomed")  # a deploy that removed the task
    async with runner(registry()):
        with pytest.raises(JobFailedError, match="ImportError"):
            await wait_for_result(apool, uuid.UUID(gone.id), timeout=WAIT)
        after = await tasks.add.aenqueue(20, 22)
        assert await wait_for_result(apool, uuid.UUID(after.id), timeout=WAIT) is not None
    status = job_status(db, uuid.UUID(gone.id))
    assert status is not None
    assert status.state == "failed"
    assert status.last_error is not None
    assert "doomed" in status.last_error
    assert (await tasks.add.aget_result(after.id)).return_value == 42


async def test_async_and_context_tasks(
    tasks: ModuleType, apool: AsyncConnectionPool[Any], runner: Runner
) -> None:
    product = await tasks.multiply.aenqueue(6, 7)
    who = await tasks.whoami.aenqueue("x")
    async with runner(registry()):
        for result in (product, who):
            await wait_for_result(apool, uuid.UUID(result.id), timeout=WAIT)
    assert (await tasks.multiply.aget_result(product.id)).return_value == {"product": 42}
    assert (await tasks.whoami.aget_result(who.id)).return_value == {
        "id": who.id,
        "attempt": 1,
        "tag": "x",
    }


def test_the_sqlxmq_worker_command_runs_django_tasks(
    django_db: Any, dsn: str, db: psycopg.Connection[Any], processes: Processes
) -> None:
    from .djangoapp.tasks import add

    worker = processes.start(
        [
            sys.executable,
            "-m",
            "sqlxmq_py.cli",
            "--dsn",
            dsn,
            "--json",
            "worker",
            "sqlxmq_py.integrations.django_tasks:worker_registry",
        ],
        env=clean_env(
            DJANGO_SETTINGS_MODULE="tests.integrations.django_settings", SQLXMQ_DJANGO_DSN=dsn
        ),
    )
    worker.wait_for("worker_started")
    result = add.enqueue(4, 5)
    db.autocommit = True
    assert wait_for_result(db, uuid.UUID(result.id), timeout=WAIT)["return_value"] == 9
    assert add.get_result(result.id).return_value == 9


@pytest.mark.parametrize(
    ("name", "class_path"),
    [
        ("unprintable", "tests.integrations.djangoapp.tasks.Unprintable"),
        ("exits", "builtins.SystemExit"),
        ("returns_a_set", "builtins.TypeError"),
    ],
)
async def test_what_a_task_raises_or_returns_never_hides_its_failure(
    tasks: ModuleType, apool: AsyncConnectionPool[Any], runner: Runner, name: str, class_path: str
) -> None:
    bad = await getattr(tasks, name).aenqueue()
    async with runner(registry()):
        with pytest.raises(JobFailedError, match="TaskFailed"):
            await wait_for_result(apool, uuid.UUID(bad.id), timeout=WAIT)
        good = await tasks.add.aenqueue(1, 1)  # the runner goes on
        await wait_for_result(apool, uuid.UUID(good.id), timeout=WAIT)
    result = await getattr(tasks, name).aget_result(bad.id)
    assert result.status == "FAILED"
    assert [e.exception_class_path for e in result.errors] == [class_path]


def test_arguments_that_are_not_json_are_refused_at_enqueue(
    django_db: Any, db: psycopg.Connection[Any]
) -> None:
    from .djangoapp.tasks import add

    with pytest.raises(TypeError, match="JSON"):
        add.enqueue({1, 2}, 3)
    assert count_jobs(db) == 0


@pytest.mark.usefixtures("django_db")
def test_unknown_options_and_bad_values_are_refused_when_the_backend_is_made() -> None:
    from django.core.exceptions import ImproperlyConfigured  # type: ignore[import-untyped]

    from sqlxmq_py import ConfigurationError
    from sqlxmq_py.integrations.django_tasks import SqlxmqBackend

    with pytest.raises(ImproperlyConfigured, match="retry"):
        SqlxmqBackend("x", {"OPTIONS": {"retry": 3}})
    with pytest.raises(ConfigurationError, match="retries"):
        SqlxmqBackend("x", {"OPTIONS": {"retries": -1}})


async def test_with_retries_a_failed_attempt_is_ready_again_and_counted(
    tasks: ModuleType, apool: AsyncConnectionPool[Any], runner: Runner
) -> None:
    result = await tasks.flaky.aenqueue()
    assert result.backend == "retrying"
    async with runner(registry()):
        assert await wait_for_result(apool, uuid.UUID(result.id), timeout=WAIT) is not None
    await result.arefresh()
    assert result.status == "SUCCESSFUL"
    assert result.return_value == 2
    assert result.attempts == 2
    assert all(result.worker_ids)
    assert [e.exception_class_path for e in result.errors] == ["builtins.ConnectionError"]
