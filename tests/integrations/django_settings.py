"""Minimal Django settings for the integration tests (``DJANGO_SETTINGS_MODULE``).

The default database is the test database named by ``$SQLXMQ_DJANGO_DSN``; tests point it at
their own fresh database with :func:`database_settings`. Django uses psycopg 3 when it is
installed. ``other`` is a SQLite database, which sqlxmq_py must refuse. ``TASKS`` runs Django's
Tasks (the django-tasks backport here) on sqlxmq_py, with the queues ``default`` and ``emails``;
``retrying`` gives a failed task one more attempt.
"""

from __future__ import annotations

import os
from typing import Any

from psycopg.conninfo import conninfo_to_dict


def database_settings(dsn: str) -> dict[str, Any]:
    """Django's ``DATABASES`` entry for a libpq connection string."""
    params = conninfo_to_dict(dsn)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": str(params.get("dbname", "postgres")),
        "USER": str(params.get("user", "")),
        "PASSWORD": str(params.get("password", "")),
        "HOST": str(params.get("host", "")),
        "PORT": str(params.get("port", "")),
    }


SECRET_KEY = "sqlxmq-tests-only"
USE_TZ = True
INSTALLED_APPS = ["tests.integrations.djangoapp"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DATABASES = {
    "default": database_settings(os.environ.get("SQLXMQ_DJANGO_DSN", "dbname=postgres")),
    "other": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
}
TASKS = {
    "default": {
        "BACKEND": "sqlxmq_py.integrations.django_tasks.SqlxmqBackend",
        "QUEUES": ["default", "emails"],
        "OPTIONS": {"database": "default", "retries": 0, "retain_for": 3600},
    },
    "retrying": {
        "BACKEND": "sqlxmq_py.integrations.django_tasks.SqlxmqBackend",
        "OPTIONS": {"retries": 1},
    },
}
