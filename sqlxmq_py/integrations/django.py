"""Django integration: spawn jobs on Django's own database connection, so that they commit or
roll back with the ORM writes of the same ``transaction.atomic()`` block.

Django (4.2+) talks to PostgreSQL through psycopg 3 when it is installed; its connection
wrapper holds the raw ``psycopg.Connection``, which every sqlxmq_py call accepts::

    from django.db import transaction
    from sqlxmq_py.integrations.django import spawn_in_django

    with transaction.atomic():
        order = Order.objects.create(total=42)
        spawn_in_django(send_receipt.builder().set_json({"order": order.pk}))

Outside ``atomic()`` Django runs in autocommit mode, and the job commits at once. Runners run
apart from Django, e.g. ``sqlxmq worker myproject.jobs:registry``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

try:
    from django.db import connections, transaction  # type: ignore[import-untyped]
except ImportError as exc:  # pragma: no cover - exercised with the module hidden
    raise ImportError("sqlxmq_py.integrations.django needs Django: pip install django") from exc

import psycopg

from ..builder import JobBuilder
from ..errors import ConfigurationError
from ..spawn import spawn_many

__all__ = ["django_connection", "spawn_in_django", "spawn_many_in_django"]


def django_connection(using: str = "default") -> psycopg.Connection[Any]:
    """The raw psycopg connection behind Django's connection ``using`` (connecting if needed),
    for any sqlxmq_py call that should join Django's current transaction (``job_status``,
    ``cancel``, ...).

    Raises:
        ConfigurationError: the database is not PostgreSQL through psycopg 3.
    """
    wrapper = connections[using]
    if wrapper.vendor != "postgresql":
        raise ConfigurationError(
            f"Django database {using!r} is {wrapper.vendor}, not PostgreSQL: sqlxmq_py needs "
            "the queue in a PostgreSQL database"
        )
    wrapper.ensure_connection()
    raw = wrapper.connection
    if not isinstance(raw, psycopg.Connection):
        raise ConfigurationError(
            f"Django database {using!r} uses {type(raw).__module__}, not psycopg 3: install "
            "psycopg (3) so that Django uses it"
        )
    return raw


def spawn_in_django(builder: JobBuilder, using: str = "default") -> uuid.UUID:
    """Spawns the job on Django's connection ``using``, in its current transaction (inside
    ``transaction.atomic()`` it commits or rolls back with the block); returns its id."""
    return spawn_many_in_django([builder], using)[0]


def spawn_many_in_django(builders: Iterable[JobBuilder], using: str = "default") -> list[uuid.UUID]:
    """Spawns the jobs in one statement on Django's connection ``using`` (see
    :func:`spawn_in_django`); returns their ids in order."""
    wrapper = connections[using]
    wrapper.validate_no_broken_transaction()
    # a failed statement breaks the transaction: tell Django, as its own cursors would
    with transaction.mark_for_rollback_on_error(using):
        return spawn_many(django_connection(using), list(builders))
