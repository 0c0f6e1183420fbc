"""Django: jobs spawned on Django's connection commit and roll back with its ORM writes."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from sqlxmq_py import ConfigurationError, CurrentJob, job
from sqlxmq_py.admin import job_status

from ..helpers import count_jobs


@job(channel_name="receipts")
async def send_receipt(current_job: CurrentJob) -> None: ...


def orders(db: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return db.execute("SELECT id, total FROM djangoapp_order ORDER BY id").fetchall()


def test_spawn_in_atomic_commits_with_the_model_write(
    django_db: Any, db: psycopg.Connection[Any]
) -> None:
    from django.db import transaction

    from sqlxmq_py.integrations.django import spawn_in_django

    with transaction.atomic():
        order = django_db.objects.create(total=42)
        job_id = spawn_in_django(send_receipt.builder().set_json({"order": order.pk}))
        assert count_jobs(db) == 0  # not committed yet: one transaction with the order
        assert orders(db) == []
    assert orders(db) == [(order.pk, 42)]
    status = job_status(db, job_id)
    assert status is not None
    assert status.state == "ready"
    payload = db.execute("SELECT payload_json FROM mq_payloads WHERE id = %s", (job_id,))
    assert payload.fetchone() == ({"order": order.pk},)


def test_an_exception_in_atomic_drops_the_model_write_and_the_job(
    django_db: Any, db: psycopg.Connection[Any]
) -> None:
    from django.db import transaction

    from sqlxmq_py.integrations.django import spawn_in_django

    def checkout() -> None:
        with transaction.atomic():
            order = django_db.objects.create(total=7)
            spawn_in_django(send_receipt.builder().set_json({"order": order.pk}))
            raise RuntimeError("card declined")

    with pytest.raises(RuntimeError, match="card declined"):
        checkout()
    assert orders(db) == []
    assert count_jobs(db) == 0


def test_a_rolled_back_savepoint_drops_only_its_jobs(
    django_db: Any, db: psycopg.Connection[Any]
) -> None:
    from django.db import transaction

    from sqlxmq_py.integrations.django import spawn_many_in_django

    def inner_step() -> None:
        with transaction.atomic():
            spawn_many_in_django([send_receipt.builder()])
            raise ValueError("inner")

    with transaction.atomic():
        kept = spawn_many_in_django([send_receipt.builder(), send_receipt.builder()])
        with pytest.raises(ValueError, match="inner"):
            inner_step()
    assert count_jobs(db) == 2
    assert all(job_status(db, job_id) is not None for job_id in kept)


def test_outside_atomic_the_job_commits_at_once(
    django_db: Any, db: psycopg.Connection[Any]
) -> None:
    from sqlxmq_py.integrations.django import django_connection, spawn_in_django

    job_id = spawn_in_django(send_receipt.builder())
    assert job_status(db, job_id) is not None
    assert isinstance(django_connection(), psycopg.Connection)


@pytest.mark.usefixtures("django_db")
def test_a_database_that_is_not_postgresql_is_refused() -> None:
    from sqlxmq_py.integrations.django import spawn_in_django

    with pytest.raises(ConfigurationError, match="sqlite"):
        spawn_in_django(send_receipt.builder(), using="other")
