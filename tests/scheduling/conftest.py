"""Fixtures of the scheduling tests: a runner on the test database (as in tests/runner), and
small readers of the history and the database clock."""

from __future__ import annotations

from typing import Any

import pytest

from sqlxmq_py import JobRegistry, NamedJob

from ..runner.conftest import Runner, start_runner

__all__ = ["Runner"]


@pytest.fixture
def runner(dsn: str) -> Runner:
    """``async with runner([jobs] or registry, **options) as handle:`` runs a runner on the test
    database, with maintenance every 0.1 s (see tests/runner/conftest.py)."""

    def make(jobs: list[NamedJob[..., Any]] | JobRegistry, **options: Any) -> Any:
        return start_runner(dsn, jobs, **options)

    return make
