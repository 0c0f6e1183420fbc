"""Issue 9.2: a job must not be able to end its worker. Async and thread jobs that call
``sys.exit()`` or raise ``SystemExit`` / ``KeyboardInterrupt`` fail their attempt like any other
exception; a runner started through the API (in an application process) and the ``sqlxmq
worker`` process go on serving, and the worker still stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import uuid
from typing import Any

import psycopg
import pytest

from sqlxmq_py import NamedJob

from ..cli.conftest import ROOT, clean_env
from ..helpers import wait_until
from .app import exits, exits_thread, quick
from .conftest import Worker, state, status

HOW = ["sys.exit", "SystemExit", "KeyboardInterrupt"]
KINDS: dict[str, NamedJob[..., Any]] = {"async": exits, "thread": exits_thread}


def expected_name(how: str) -> str:
    return "SystemExit" if how == "sys.exit" else how


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("how", HOW)
async def test_a_job_that_exits_fails_its_attempt_and_the_runner_goes_on(
    dsn: str, db: psycopg.Connection[Any], how: str, kind: str
) -> None:
    """issue 9.2: with the runner API in an application process (tests/adversarial/inprocess.py,
    a process of its own so that what escapes the runner cannot end pytest): the attempt is
    recorded as failed naming SystemExit or KeyboardInterrupt, the runner keeps running, a
    normal job spawned afterwards completes, and the application exits normally."""
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "tests.adversarial.inprocess", dsn, kind, how],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=clean_env(),
        timeout=50,
        check=False,
    )
    output = f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == 0, f"the application exited with {result.returncode}; {output}"
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("finished "), output
    ids = json.loads(last.removeprefix("finished "))
    failed = status(db, uuid.UUID(ids["bad"]))
    assert failed is not None
    assert failed.state == "failed"
    assert failed.last_error is not None
    assert expected_name(how) in failed.last_error
    assert state(db, uuid.UUID(ids["quick"])) == "completed"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("how", HOW)
async def test_a_job_that_exits_leaves_the_worker_process_running(
    conn: psycopg.Connection[Any],
    db: psycopg.Connection[Any],
    adv_worker: Worker,
    how: str,
    kind: str,
) -> None:
    """issue 9.2: ``sqlxmq worker``: after the bad job the process is still alive, its attempt
    is recorded as failed with the reason, a normal job then completes, and SIGTERM ends the
    process with exit code 0."""
    process = adv_worker("--concurrency", "2", "4")
    process.wait_for("worker_started")

    def settled(job_id: Any, wanted: str) -> bool:
        assert process.proc.poll() is None, (
            f"the worker exited with code {process.proc.returncode}; stderr:\n{process.stderr()}"
        )
        return state(db, job_id) == wanted

    bad_id = KINDS[kind].builder().set_json({"how": how}).spawn(conn)
    conn.commit()
    await wait_until(lambda: settled(bad_id, "failed"), timeout=20)
    quick_id = quick.builder().set_retain_for(3600).spawn(conn)
    conn.commit()
    await wait_until(lambda: settled(quick_id, "completed"), timeout=20)
    failed = status(db, bad_id)
    assert failed is not None
    assert failed.last_error is not None
    assert expected_name(how) in failed.last_error
    process.signal(signal.SIGTERM)
    assert await asyncio.to_thread(process.wait) == 0
