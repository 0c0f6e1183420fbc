"""Fixtures of the framework integration tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from .django_settings import database_settings


@pytest.fixture
def django_db(dsn: str) -> Iterator[Any]:
    """Django set up with ``tests.integrations.django_settings``, its default database pointed
    at this test's database, with the ``Order`` table; yields the ``Order`` model."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.integrations.django_settings")
    import django  # type: ignore[import-untyped]
    from django.apps import apps  # type: ignore[import-untyped]
    from django.db import connections  # type: ignore[import-untyped]

    if not apps.ready:
        django.setup()
    from .djangoapp.models import Order

    default = connections["default"]
    default.close()
    default.settings_dict.update(database_settings(dsn))
    with default.schema_editor() as editor:
        editor.create_model(Order)
    try:
        yield Order
    finally:
        default.close()
