"""``sqlxmq worker --burst``: a real worker process that drains its channels and exits, 0 if
every attempt completed its job, 1 if any did not."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import psycopg

from sqlxmq_py import job, spawn_many
from sqlxmq_py.admin import job_status

from ..cli.app import boom, quick
from ..cli.conftest import run_cli


def burst(dsn: str, *args: str) -> tuple[int, dict[str, Any]]:
    """Runs ``sqlxmq --json worker tests.cli.app:registry --burst ARGS``; its exit code and its
    ``worker_burst_done`` event."""
    result: subprocess.CompletedProcess[str] = run_cli(
        "--dsn", dsn, "--json", "worker", "tests.cli.app:registry", "--burst", *args
    )
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    done = [e for e in events if e.get("event") == "worker_burst_done"]
    assert len(done) == 1, result.stderr
    assert done[0]["exit_code"] == result.returncode
    return result.returncode, done[0]


def test_exit_0_once_every_due_job_completed(dsn: str, conn: psycopg.Connection[Any]) -> None:
    parent, later = spawn_many(conn, [quick.builder(), quick.builder().set_delay(3600)])
    child = quick.builder().set_after([parent]).spawn(conn)  # released by its parent's end
    conn.commit()

    code, done = burst(dsn)

    assert code == 0
    assert (done["completed"], done["not_completed"]) == (2, {})
    assert job_status(conn, parent) is None
    assert job_status(conn, child) is None
    status = job_status(conn, later)  # scheduled for later: left for another run
    assert status is not None
    assert status.state == "scheduled"


def test_exit_1_when_an_attempt_failed(dsn: str, conn: psycopg.Connection[Any]) -> None:
    failing, fine = spawn_many(conn, [boom.builder(), quick.builder()])
    conn.commit()

    code, done = burst(dsn)

    assert code == 1
    assert (done["completed"], done["not_completed"]) == (1, {"failed": 1})
    status = job_status(conn, failing)
    assert status is not None
    assert status.state == "failed"
    assert job_status(conn, fine) is None


def test_exit_1_when_a_job_name_is_unknown_to_the_registry(
    dsn: str, conn: psycopg.Connection[Any]
) -> None:
    @job(name="kit.not_in_the_registry", channel_name="cli")
    async def stranger(current_job: Any) -> None: ...

    job_id = stranger.builder().spawn(conn)
    conn.commit()

    code, done = burst(dsn)

    assert code == 1
    assert done["not_completed"] == {"parked": 1}
    status = job_status(conn, job_id)
    assert status is not None
    assert (status.state, status.attempts) == ("waiting", 0)


def test_an_empty_queue_exits_0_at_once_and_other_channels_are_not_waited_for(
    dsn: str, conn: psycopg.Connection[Any]
) -> None:
    code, done = burst(dsn)
    assert (code, done["completed"], done["not_completed"]) == (0, 0, {})
    elsewhere = quick.builder().set_channel_name("elsewhere").spawn(conn)
    conn.commit()

    code, done = burst(dsn, "--channel", "cli")

    assert (code, done["completed"]) == (0, 0)
    status = job_status(conn, elsewhere)
    assert status is not None
    assert status.state == "ready"


def test_help_says_what_counts() -> None:
    result = run_cli("worker", "--help")
    assert result.returncode == 0
    assert "--burst" in result.stdout
    text = " ".join(result.stdout.split())
    assert "exit 0 if every attempt completed its job, 1 if any did not" in text
    assert "named a job the registry does not know (parked" in text
