"""Helpers of the adversarial tests: a runner on the test database (as in tests/runner), job
status reads, and ``sqlxmq worker`` processes running ``tests.adversarial.app``."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Container, Iterable, Iterator
from typing import Any

import psycopg
import pytest

from sqlxmq_py import JobRegistry, JobStatus, NamedJob, job_status

from ..cli.conftest import WorkerProcess
from ..helpers import wait_until
from ..runner.conftest import Runner, start_runner

__all__ = ["Runner", "Worker", "start_runner", "state", "status", "wait_for_state"]


@pytest.fixture
def runner(dsn: str) -> Runner:
    """``async with runner([jobs] or registry, **options) as handle:`` runs a runner on the test
    database, with maintenance every 0.1 s (see tests/runner/conftest.py)."""

    def make(jobs: list[NamedJob[..., Any]] | JobRegistry, **options: Any) -> Any:
        return start_runner(dsn, jobs, **options)

    return make


def status(db: psycopg.Connection[Any], job_id: uuid.UUID) -> JobStatus | None:
    """The job's status read on an autocommit connection."""
    return job_status(db, job_id)


def state(db: psycopg.Connection[Any], job_id: uuid.UUID) -> str:
    """The job's state (see ``JobStatus.state``), or ``"gone"`` if it is neither queued nor
    kept."""
    found = job_status(db, job_id)
    return "gone" if found is None else found.state


async def wait_for_state(
    db: psycopg.Connection[Any],
    job_ids: Iterable[uuid.UUID],
    wanted: str | Container[str],
    timeout: float = 15.0,
) -> None:
    """Waits until every job is in ``wanted`` (a state or several; ``"gone"`` for neither queued
    nor kept); fails after ``timeout`` naming the state and last error of each job."""
    ids = list(job_ids)
    accepted = {wanted} if isinstance(wanted, str) else wanted
    try:
        await wait_until(lambda: all(state(db, i) in accepted for i in ids), timeout=timeout)
    except AssertionError:
        seen = []
        for job_id in ids:
            found = job_status(db, job_id)
            if found is None:
                seen.append(f"{job_id}: gone")
            else:
                error = (found.last_error or "").splitlines()[0][:160] if found.last_error else None
                seen.append(f"{job_id}: {found.state}, attempts {found.attempts}, error {error!r}")
        raise AssertionError(
            f"not all jobs {wanted!r} within {timeout}s:\n" + "\n".join(seen)
        ) from None


Worker = Callable[..., WorkerProcess]


@pytest.fixture
def adv_worker(dsn: str) -> Iterator[Worker]:
    """Starts ``sqlxmq --json worker tests.adversarial.app:registry ARGS`` processes on the test
    database; kills leftovers."""
    started: list[WorkerProcess] = []

    def start(*args: str) -> WorkerProcess:
        process = WorkerProcess(dsn, "tests.adversarial.app:registry", *args)
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
