"""Where the library's log events go (issue 10.5): nowhere until the application configures
logging; through the standard ``logging`` module when it does (``basicConfig``, ``dictConfig``,
handlers on ``sqlxmq_py``); through structlog when the application configured structlog."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import structlog

from sqlxmq_py import CurrentJob, JobRegistry, job

from ..helpers import Runner, wait_until

ROOT = Path(__file__).resolve().parents[2]


def run_app(dsn: str, mode: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.observability.logging_app", dsn, mode],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=True,
    )


def test_an_application_that_configures_no_logging_sees_nothing(dsn: str) -> None:
    app = run_app(dsn, "none")
    assert app.stdout == "done\n"  # not a line of the library's on stdout
    assert app.stderr == ""  # nor on stderr, though a job failed


def test_basic_config_at_warning_shows_failures_with_tracebacks_and_nothing_per_job(
    dsn: str,
) -> None:
    app = run_app(dsn, "basic-warning")
    assert app.stdout == "done\n"
    lines = app.stderr.splitlines()
    failed = [line for line in lines if "job_failed" in line]
    assert len(failed) == 1
    assert failed[0].startswith("ERROR:sqlxmq_py:job_failed")
    assert "boom in the job" in failed[0]
    assert "Traceback" in failed[0]  # the traceback rides on the failure's line
    assert not [line for line in lines if "job_completed" in line or "job_started" in line]


def test_basic_config_at_debug_shows_one_line_per_job(dsn: str) -> None:
    app = run_app(dsn, "basic-debug")
    lines = app.stderr.splitlines()
    assert len([line for line in lines if "sqlxmq_py:job_completed" in line]) == 1
    assert len([line for line in lines if "sqlxmq_py:job_started" in line]) == 2


async def test_a_handler_on_the_sqlxmq_logger_gets_records_with_their_keys(
    conn: psycopg.Connection[Any], runner: Runner
) -> None:
    """As ``dictConfig`` would set it up: a handler and a level on ``sqlxmq_py``."""
    if structlog.is_configured():  # pragma: no cover - a test left it configured
        structlog.reset_defaults()
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    @job
    async def quick(current_job: CurrentJob) -> None:
        pass

    library = logging.getLogger("sqlxmq_py")
    handler = Keep(level=logging.DEBUG)
    library.addHandler(handler)
    library.setLevel(logging.DEBUG)
    try:
        job_id = quick.builder().spawn(conn)
        conn.commit()
        async with runner(JobRegistry([quick])):
            await wait_until(
                lambda: any(
                    r.sqlxmq.get("job_id") == str(job_id)
                    for r in records  # type: ignore[attr-defined]
                    if r.getMessage().startswith("job_completed")
                )
            )
    finally:
        library.removeHandler(handler)
        library.setLevel(logging.NOTSET)
    completed = [r for r in records if r.getMessage().startswith("job_completed")]
    assert completed[0].levelno == logging.DEBUG
    assert completed[0].sqlxmq["job_name"] == quick.name  # type: ignore[attr-defined]
    assert "runner_id" in completed[0].sqlxmq  # type: ignore[attr-defined]
