"""Jobs declared with ``isolation="process"`` run in the runner's worker processes: their
results and typed payloads cross back and forth, a timeout kills the process, a process that
dies or a job that exits fails only its attempt, processes are replaced after their job budget
or above their memory bound, and a runner that stops kills them and hands the job back."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from sqlxmq_py import (
    ConfigurationError,
    JobCancelledError,
    JobFailedError,
    JobRegistry,
    NamedJob,
    ProcessJob,
    admin,
    job,
)
from sqlxmq_py.results import wait_for_result

from ..helpers import wait_until
from . import process_jobs as pj
from .process_jobs import Square

Runner = Any


async def _results(
    dsn: str,
    runner: Runner,
    spawned: list[uuid.UUID],
    jobs: list[NamedJob[..., Any]],
    **options: Any,
) -> list[object]:
    """Runs ``jobs`` until each of ``spawned`` ended; returns each result or its JobFailedError."""
    out: list[object] = []
    async with runner(jobs, **options), AsyncConnectionPool(dsn, open=False) as pool:
        for job_id in spawned:
            try:
                out.append(await wait_for_result(pool, job_id, timeout=60))
            except JobFailedError as exc:
                out.append(exc)
    return out


def _spawn(
    conn: psycopg.Connection[Any], named: NamedJob[..., Any], payload: Any = None
) -> uuid.UUID:
    builder = named.builder().set_retain_for(600)
    if payload is not None:
        builder.set_json(payload)
    job_id = builder.spawn(conn)
    conn.commit()
    return job_id


async def test_a_process_job_runs_in_another_process_and_its_result_comes_back(
    dsn: str, conn: psycopg.Connection[Any], runner: Runner
) -> None:
    import os

    job_id = (
        pj.whoami.builder()
        .set_json({"x": 1})
        .set_header("trace", "t-1")
        .set_retain_for(600)
        .set_channel_name("cpu")
        .spawn(conn)
    )
    conn.commit()
    (answer,) = await _results(dsn, runner, [job_id], [pj.whoami])
    assert isinstance(answer, dict)
    assert answer["pid"] != os.getpid()
    assert answer["payload"] == {"x": 1}
    assert answer["attempt"] == 1
    assert answer["channel"] == "cpu"
    assert answer["headers"] == {"trace": "t-1"}


async def test_a_typed_payload_is_decoded_in_the_process(
    dsn: str, conn: psycopg.Connection[Any], runner: Runner
) -> None:
    job_id = _spawn(conn, pj.area, Square(side=7))
    assert await _results(dsn, runner, [job_id], [pj.area]) == [49]


async def test_a_timeout_kills_the_process_and_fails_the_attempt(
    dsn: str, conn: psycopg.Connection[Any], runner: Runner, tmp_path: Path
) -> None:
    started = tmp_path / "started"
    spun = _spawn(conn, pj.spin, {"started": str(started)})
    after = _spawn(conn, pj.whoami, {"after": True})
    failed, answer = await _results(
        dsn, runner, [spun, after], [pj.spin, pj.whoami], processes={"processes": 1}
    )
    assert isinstance(failed, JobFailedError)
    assert "JobTimeoutError" in str(failed)
    assert "its process was killed" in str(failed)
    # the one process was killed: the next job ran in a new one, not behind the endless loop
    assert isinstance(answer, dict)
    assert answer["pid"] != int(started.read_text())


@pytest.mark.parametrize(
    ("named", "reason"),
    [
        (pj.crash, "killed by SIGKILL (the kernel's out-of-memory killer sends it)"),
        (pj.leave, "SystemExit: 3"),
        (pj.unpicklable, "tests.runner.process_jobs.Unpicklable"),
        (pj.bad_result, "cannot be pickled"),
    ],
)
async def test_a_job_that_kills_its_process_or_misbehaves_fails_alone(
    dsn: str,
    conn: psycopg.Connection[Any],
    runner: Runner,
    named: NamedJob[..., Any],
    reason: str,
) -> None:
    bad = _spawn(conn, named)
    good = _spawn(conn, pj.whoami, {"still": "running"})
    failed, answer = await _results(dsn, runner, [bad, good], [named, pj.whoami])
    assert isinstance(failed, JobFailedError)
    assert reason in str(failed)
    assert isinstance(answer, dict)
    assert answer["payload"] == {"still": "running"}


async def test_processes_are_replaced_after_their_job_budget(
    dsn: str, conn: psycopg.Connection[Any], runner: Runner
) -> None:
    ids = [_spawn(conn, pj.whoami, {"n": n}) for n in range(3)]
    answers = await _results(
        dsn,
        runner,
        ids,
        [pj.whoami],
        concurrency=(1, 1),
        processes={"processes": 1, "max_jobs_per_process": 2},
    )
    pids = [a["pid"] for a in answers if isinstance(a, dict)]
    assert len(pids) == 3
    assert pids[0] == pids[1] != pids[2]


async def test_a_process_above_its_memory_bound_is_replaced_after_its_job(
    dsn: str, conn: psycopg.Connection[Any], runner: Runner
) -> None:
    ids = [_spawn(conn, pj.hog), _spawn(conn, pj.whoami)]
    hogged, answer = await _results(
        dsn,
        runner,
        ids,
        [pj.hog, pj.whoami],
        concurrency=(1, 1),
        processes={"processes": 1, "max_memory_mb": 32},
    )
    assert isinstance(answer, dict)
    assert answer["pid"] != hogged


async def test_a_stopping_runner_kills_the_process_and_hands_the_job_back(
    dsn: str,
    conn: psycopg.Connection[Any],
    db: psycopg.Connection[Any],
    runner: Runner,
    tmp_path: Path,
) -> None:
    started = tmp_path / "started"
    job_id = _spawn(conn, pj.sleeper, {"started": str(started)})
    async with runner([pj.sleeper]):
        await wait_until(started.exists)
    pid = int(started.read_text())
    await wait_until(lambda: not Path(f"/proc/{pid}").exists() or _zombie(pid))
    status = admin.job_status(db, job_id)
    assert status is not None
    assert status.state == "ready"  # handed back, not failed
    assert status.attempts == 0  # the interrupted attempt is not counted


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


def test_a_process_job_must_be_a_plain_module_level_function_of_the_job_alone() -> None:
    with pytest.raises(ConfigurationError, match="plain def"):

        @job(isolation="process")
        async def on_the_loop(current_job: ProcessJob) -> None: ...

    with pytest.raises(ConfigurationError, match="module level"):

        @job(isolation="process")
        def nested(current_job: ProcessJob) -> None: ...

    with pytest.raises(ConfigurationError, match="isolation must be"):
        job(isolation="fork")  # type: ignore[call-overload]


async def test_jobs_of_both_kinds_run_side_by_side(
    dsn: str, conn: psycopg.Connection[Any], runner: Runner
) -> None:
    ran = asyncio.Event()

    @job
    async def on_the_loop(current_job: Any) -> None:
        ran.set()

    on_the_loop.builder().spawn(conn)
    job_id = _spawn(conn, pj.area, Square(side=3))
    registry = JobRegistry([on_the_loop, pj.area])
    async with runner(registry), AsyncConnectionPool(dsn, open=False) as pool:
        assert await wait_for_result(pool, job_id, timeout=60) == 9
        await asyncio.wait_for(ran.wait(), 30)


async def test_a_cancel_request_kills_a_running_process_job(
    dsn: str,
    conn: psycopg.Connection[Any],
    db: psycopg.Connection[Any],
    runner: Runner,
    tmp_path: Path,
) -> None:
    started = tmp_path / "started"
    job_id = _spawn(conn, pj.sleeper, {"started": str(started)})
    async with runner([pj.sleeper]), AsyncConnectionPool(dsn, open=False) as pool:
        await wait_until(started.exists)
        admin.cancel(db, [job_id])
        with pytest.raises(JobCancelledError):
            await wait_for_result(pool, job_id, timeout=60)
    pid = int(started.read_text())
    await wait_until(lambda: not Path(f"/proc/{pid}").exists() or _zombie(pid))
