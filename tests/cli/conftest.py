"""Running the real ``sqlxmq`` command (``python -m sqlxmq_py.cli``) against the test database."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import structlog

ROOT = Path(__file__).resolve().parents[2]

Cli = Callable[..., subprocess.CompletedProcess[str]]


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any database variable, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("SQLXMQ_DSN", "DATABASE_URL", "SQLXMQ_DASHBOARD_TOKEN")
    }
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


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


class WorkerProcess:
    """A ``sqlxmq --json worker`` process whose JSON log lines are read as they come."""

    def __init__(self, dsn: str, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sqlxmq_py.cli", "--dsn", dsn, "--json", "worker", *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_env(),
            cwd=ROOT,
        )
        self.lines: list[str] = []
        self._events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                self._events.put(event)
        self._events.put(None)

    def wait_for(self, event_name: str, timeout: float = 20.0) -> dict[str, Any]:
        """Blocks until the worker logs ``event_name``; returns the event."""
        while True:
            try:
                event = self._events.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(
                    f"no {event_name!r} within {timeout}s; stderr:\n{''.join(self.lines)}"
                ) from None
            if event is None:
                raise AssertionError(
                    f"worker exited before {event_name!r}; stderr:\n{''.join(self.lines)}"
                )
            if event.get("event") == event_name:
                return event

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 30.0) -> int:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return code

    def stderr(self) -> str:
        return "".join(self.lines)


Worker = Callable[..., WorkerProcess]


@pytest.fixture
def worker(dsn: str) -> Iterator[Worker]:
    """Starts ``sqlxmq worker`` processes on the test database; kills leftovers."""
    started: list[WorkerProcess] = []

    def start(*args: str) -> WorkerProcess:
        process = WorkerProcess(dsn, *args)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.proc.poll() is None:
            process.proc.kill()
        process.proc.wait()
        process._reader.join(timeout=5)
        if process.proc.stderr is not None:
            process.proc.stderr.close()


@pytest.fixture
def in_process() -> Iterator[None]:
    """For calling ``sqlxmq_py.cli.main`` in the test process: undoes its structlog set-up."""
    saved = structlog.get_config()
    try:
        yield
    finally:
        structlog.configure(**saved)
