"""The model the Django tests write next to their jobs."""

from __future__ import annotations

from django.db import models  # type: ignore[import-untyped]


class Order(models.Model):  # type: ignore[misc]
    total = models.IntegerField()

    class Meta:
        app_label = "djangoapp"
