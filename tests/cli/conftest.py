"""Running the real ``sqlxmq`` command (``python -m sqlxmq_py.cli``) against the test database."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
import structlog

from ..processes import ROOT, Child, Processes, clean_env

__all__ = ["ROOT", "Cli", "Worker", "clean_env", "run_cli"]

Cli = Callable[..., subprocess.CompletedProcess[str]]


def run_cli(
    *args: str, input: str | None = None, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Runs ``sqlxmq ARGS`` to completion."""
    return subprocess.run(
        [sys.executable, "-m", "sqlxmq_py.cli", *args],
        capture_output=True,
        text=True,
        input=input,
        env=env if env is not None else clean_env(),
        cwd=ROOT,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def cli(dsn: str) -> Cli:
    """``cli("jobs", "--state", "failed")`` runs ``sqlxmq --dsn <test db> jobs ...``."""

    def run(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return run_cli("--dsn", dsn, *args, input=input)

    return run


@pytest.fixture
def tables(db: psycopg.Connection[Any]) -> None:
    """The tables the jobs of ``tests.cli.app`` write to."""
    db.execute("CREATE TABLE starts (job_id uuid, attempt int)")
    db.execute("CREATE TABLE effects (job_id uuid)")


Worker = Callable[..., Child]


@pytest.fixture
def worker(dsn: str, processes: Processes) -> Worker:
    """``worker(*args)`` starts ``sqlxmq --json worker ARGS`` on the test database (see
    :class:`tests.processes.Child`); leftovers are killed at teardown."""

    def start(*args: str) -> Child:
        return processes.worker(dsn, *args)

    return start


@pytest.fixture
def in_process() -> Iterator[None]:
    """For calling ``sqlxmq_py.cli.main`` in the test process: undoes its structlog set-up."""
    saved = structlog.get_config()
    try:
        yield
    finally:
        structlog.configure(**saved)
