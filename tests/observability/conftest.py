"""Runners for the observability tests (the runner tests' helper, with short intervals)."""

from __future__ import annotations

from typing import Any

import pytest

from ..runner.conftest import Runner, start_runner


@pytest.fixture
def runner(dsn: str) -> Runner:
    """``async with runner([jobs], hooks=[...]) as handle:`` runs a runner on the test db."""

    def make(jobs: Any, **options: Any) -> Any:
        return start_runner(dsn, jobs, **options)

    return make
