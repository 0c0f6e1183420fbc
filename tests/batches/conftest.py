"""Batch tests run runners in-process (the fixture of tests/runner) and in subprocesses."""

from __future__ import annotations

from ..runner.conftest import runner

__all__ = ["runner"]
