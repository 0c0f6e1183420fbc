"""Helpers of the adversarial tests: job status reads, and ``sqlxmq worker`` processes running
``tests.adversarial.app`` (the ``runner`` fixture is the suite's, in tests/conftest.py)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Container, Iterable
from typing import Any

import psycopg
import pytest

from sqlxmq_py.admin import JobStatus, job_status

from ..helpers import Runner, wait_until
from ..processes import Child, Processes

__all__ = ["Runner", "Worker", "state", "status", "wait_for_state"]


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


Worker = Callable[..., Child]


@pytest.fixture
def adv_worker(dsn: str, processes: Processes) -> Worker:
    """Starts ``sqlxmq --json worker tests.adversarial.app:registry ARGS`` processes on the test
    database; leftovers are killed at teardown."""

    def start(*args: str) -> Child:
        return processes.worker(dsn, "tests.adversarial.app:registry", *args)

    return start
