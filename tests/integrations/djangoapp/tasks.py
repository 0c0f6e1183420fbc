"""Django tasks (``@task``) the Django Tasks tests enqueue; imported once Django is set up."""

from __future__ import annotations

from typing import Any

from django_tasks import TaskContext, task

from .models import Order


@task
def add(a: int, b: int) -> int:
    return a + b


@task(queue_name="emails", priority=40)
def record_order(total: int) -> int:
    """Writes an order through the ORM, in the worker's thread: its Django connection."""
    order = Order.objects.create(total=total)
    return int(order.pk)


class CardDeclined(Exception):
    pass


@task
def decline(reason: str) -> None:
    raise CardDeclined(reason)


@task
async def multiply(a: int, b: int) -> dict[str, Any]:
    return {"product": a * b}


@task(takes_context=True)
def whoami(context: TaskContext, tag: str) -> dict[str, Any]:
    return {"id": context.task_result.id, "attempt": context.attempt, "tag": tag}


@task
def doomed() -> str:
    """Removed from this module by a test after it is enqueued (a deploy that dropped it)."""
    return "never"


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text for you")


@task
def unprintable() -> None:
    raise Unprintable


@task
def exits() -> None:
    raise SystemExit(3)


@task
def returns_a_set() -> set[int]:
    return {1, 2}


@task(backend="retrying", takes_context=True)
def flaky(context: TaskContext) -> int:
    """Fails its first attempt."""
    if context.attempt == 1:
        raise ConnectionError("try again")
    return context.attempt
