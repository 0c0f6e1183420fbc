"""Issue 9.1: a job whose exception cannot be printed must not get stuck. The runner turns every
failed attempt into text (type, message, traceback); when ``str()`` (and ``repr()``) of the
exception raise, that text must still be recorded and the runner must go on serving."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from sqlxmq_py import BlockingCurrentJob, CurrentJob, JobRegistry, job

from .conftest import Runner, status, wait_for_state

pytestmark = pytest.mark.timeout(60)  # a hang (a partial fix) fails within a minute


class UnprintableError(Exception):
    """``str()`` reads an attribute that ``__init__`` never set."""

    def __init__(self) -> None:
        super().__init__()

    def __str__(self) -> str:
        return self.detail  # type: ignore[attr-defined,no-any-return]


class UnprintableEverywhereError(Exception):
    """Neither ``str()`` nor ``repr()`` works."""

    def __str__(self) -> str:
        raise RuntimeError("__str__ is broken")

    def __repr__(self) -> str:
        raise RuntimeError("__repr__ is broken")


ERRORS: dict[str, type[Exception]] = {
    "str_raises": UnprintableError,
    "str_and_repr_raise": UnprintableEverywhereError,
}


@job(retries=0)
async def unprintable(current_job: CurrentJob) -> None:
    raise ERRORS[current_job.json()]()


@job(retries=0)
def unprintable_thread(current_job: BlockingCurrentJob) -> None:
    raise ERRORS[current_job.json()]()


@job(retain_for=3600)
async def normal(current_job: CurrentJob) -> str:
    return "served"


@pytest.mark.parametrize("kind", ["async", "thread"])
@pytest.mark.parametrize("case", list(ERRORS))
async def test_an_unprintable_exception_is_recorded_and_the_runner_goes_on(
    conn: psycopg.Connection[Any],
    db: psycopg.Connection[Any],
    runner: Runner,
    case: str,
    kind: str,
) -> None:
    """issue 9.1: the attempt is recorded (failed, last_error names the exception type) and the
    runner then runs a normal job."""
    bad = unprintable if kind == "async" else unprintable_thread
    bad_id = bad.builder().set_json(case).spawn(conn)
    conn.commit()
    async with runner(JobRegistry([unprintable, unprintable_thread, normal]), lease=2):
        await wait_for_state(db, [bad_id], "failed")
        normal_id = normal.builder().spawn(conn)
        conn.commit()
        await wait_for_state(db, [normal_id], "completed")
    failed = status(db, bad_id)
    assert failed is not None
    assert failed.attempts == 1
    assert failed.last_error is not None
    assert ERRORS[case].__name__ in failed.last_error
    assert "lease expired" not in failed.last_error
