"""``sqlxmq worker``: a real process, stopped by signals, serving metrics."""

from __future__ import annotations

import asyncio
import signal
import sys
import urllib.request
from typing import Any

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sqlxmq_py import exists, spawn_many
from sqlxmq_py.admin import job_status
from sqlxmq_py.cli._common import EXIT_USAGE, CliError
from sqlxmq_py.cli.worker import event_loop_runner

from ..helpers import wait_until
from .app import GATE, boom, gated, gated_thread, quick
from .conftest import Worker, run_cli


def started(db: psycopg.Connection[Any]) -> int:
    row = db.execute("SELECT count(*) FROM starts").fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.usefixtures("tables")
async def test_first_sigterm_lets_the_running_job_finish_and_exits_0(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], worker: Worker
) -> None:
    process = worker("tests.cli.app:registry")
    process.wait_for("worker_started")
    job_id = gated.builder().spawn(conn)
    conn.commit()
    await wait_until(lambda: started(db) == 1)

    process.signal(signal.SIGTERM)
    stopping = process.wait_for("worker_stopping")
    assert stopping["running_jobs"] == 1
    assert process.proc.poll() is None  # still waiting for the job
    db.execute(f"NOTIFY {GATE}")  # the job may finish now

    assert await asyncio.to_thread(process.wait) == 0
    assert db.execute("SELECT job_id FROM effects").fetchall() == [(job_id,)]
    assert not exists(db, job_id)  # completed before the process exited
    assert db.execute("SELECT count(*) FROM mq_listeners").fetchone() == (0,)


@pytest.mark.usefixtures("tables")
async def test_sigterm_past_the_shutdown_timeout_hands_the_job_back_as_interrupted(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], dsn: str, worker: Worker
) -> None:
    process = worker("tests.cli.app:registry", "--shutdown-timeout", "0")
    process.wait_for("worker_started")
    job_id = gated.builder().spawn(conn)
    conn.commit()
    await wait_until(lambda: started(db) == 1)

    process.signal(signal.SIGTERM)
    line = process.wait_for("job_interrupted")
    assert (line["job_id"], line["attempt"], line["why"]) == (str(job_id), 1, "runner stopping")
    assert await asyncio.to_thread(process.wait, 60) == 0

    status = job_status(db, job_id)
    assert status is not None
    assert (status.state, status.attempts) == ("ready", 0)  # at once, no attempt used
    assert status.interrupted is not None
    assert status.interrupted.count == 1
    assert status.interrupted.last_by.endswith(f":{process.proc.pid}")
    assert db.execute("SELECT count(*) FROM effects").fetchone() == (0,)
    shown = run_cli("--dsn", dsn, "show", str(job_id))
    assert shown.returncode == 0, shown.stderr
    assert "1 time, last at " in shown.stdout
    assert f"by {status.interrupted.last_by}" in shown.stdout
    summary = run_cli("--dsn", dsn, "status")
    assert "1 interrupted" in summary.stdout


@pytest.mark.usefixtures("tables")
@pytest.mark.parametrize(
    ("kind", "first", "second", "code"),
    [
        ("async", signal.SIGTERM, signal.SIGTERM, 143),
        ("thread", signal.SIGINT, signal.SIGINT, 130),
    ],
)
async def test_second_signal_stops_at_once_handing_back_only_what_stopped(
    conn: psycopg.Connection[Any],
    db: psycopg.Connection[Any],
    dsn: str,
    worker: Worker,
    kind: str,
    first: signal.Signals,
    second: signal.Signals,
    code: int,
) -> None:
    # a shutdown timeout the test never reaches: only the second signal can end the wait
    process = worker("tests.cli.app:registry", "--shutdown-timeout", "3600")
    process.wait_for("worker_started")
    builder = gated.builder() if kind == "async" else gated_thread.builder().set_json({"dsn": dsn})
    job_id = builder.spawn(conn)
    conn.commit()
    await wait_until(lambda: started(db) == 1)

    process.signal(first)
    process.wait_for("worker_stopping")
    process.signal(second)
    process.wait_for("worker_stopping_now")
    assert await asyncio.to_thread(process.wait, 60) == code

    status = job_status(db, job_id)
    assert status is not None
    if kind == "async":
        # the cancelled coroutine has stopped: handed back, another runner may run it at once,
        # without using up an attempt
        assert (status.state, status.attempts) == ("ready", 0)
        assert status.interrupted is not None
        assert status.interrupted.count == 1
    else:
        # a thread cannot be stopped: its lease is kept (the process exited with the thread),
        # so no runner starts the job before that lease expires
        assert (status.state, status.attempts) == ("running", 1)
    assert db.execute("SELECT count(*) FROM effects").fetchone() == (0,)


async def test_metrics_port_serves_job_and_queue_metrics(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], worker: Worker
) -> None:
    process = worker("tests.cli.app:registry", "--metrics-port", "0")
    url = process.wait_for("worker_started")["metrics_url"]
    assert url.startswith("http://127.0.0.1:")
    failed, *_ = spawn_many(conn, [boom.builder(), quick.builder(), quick.builder()])
    conn.commit()

    def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200
            text = response.read().decode()
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    labels = (("channel", "cli"), ("job_name", quick.name))
    boom_labels = (("channel", "cli"), ("job_name", boom.name))
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}

    async def counted() -> bool:
        nonlocal samples
        samples = await asyncio.to_thread(scrape)
        return (
            samples.get(("sqlxmq_jobs_completed_total", labels)) == 2.0
            and samples.get(("sqlxmq_jobs_failed_total", boom_labels)) == 1.0
        )

    try:
        await wait_until(counted, timeout=30, interval=0.1)
    except AssertionError:
        jobs = {k: v for k, v in samples.items() if k[0].startswith("sqlxmq_jobs_")}
        raise AssertionError(f"job metrics: {jobs}\nworker:\n{process.stderr()}") from None
    # a scrape reads the queue before the counters: the one that saw the failure counted may
    # have read the queue just before that failure was written. Scrape once more.
    samples = await asyncio.to_thread(scrape)
    assert samples[("sqlxmq_jobs_started_total", labels)] == 2.0
    assert samples[("sqlxmq_jobs_failed_total", boom_labels)] == 1.0
    done = (*labels, ("outcome", "completed"))
    assert samples[("sqlxmq_job_duration_seconds_count", tuple(sorted(done)))] == 2.0
    # the queue, read at scrape time: the failed job stays
    assert samples[("sqlxmq_queue_jobs", (("channel", "cli"), ("state", "failed")))] == 1.0
    assert samples[("sqlxmq_queue_jobs", (("channel", "cli"), ("state", "ready")))] == 0.0
    assert samples[("sqlxmq_queue_up", ())] == 1.0
    assert exists(db, failed)
    process.signal(signal.SIGTERM)
    assert await asyncio.to_thread(process.wait) == 0


def test_worker_runs_a_registry_from_a_factory(
    conn: psycopg.Connection[Any], db: psycopg.Connection[Any], worker: Worker
) -> None:
    job_id = quick.builder().spawn(conn)
    conn.commit()
    process = worker("tests.cli.app:make_registry", "--concurrency", "1", "2", "--channel", "cli")
    event = process.wait_for("worker_started")
    assert event["jobs"] == [quick.name]
    assert event["channels"] == ["cli"]
    assert event["concurrency"] == "1-2"
    process.wait_for("job_completed")
    assert not exists(db, job_id)
    process.signal(signal.SIGINT)
    assert process.wait() == 0


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("tests.cli.app", "expected MODULE:REGISTRY"),
        ("tests.cli.nothing_here:registry", "cannot import 'tests.cli.nothing_here'"),
        ("tests.cli.app:missing", "has no attribute 'missing'"),
        ("tests.cli.app:GATE", "is a str, not a JobRegistry"),
    ],
)
def test_unimportable_registry_is_a_usage_error(dsn: str, spec: str, message: str) -> None:
    result = run_cli("--dsn", dsn, "worker", spec)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0]


def test_worker_on_a_database_without_schema_exits_1(empty_dsn: str) -> None:
    result = run_cli("--dsn", empty_dsn, "worker", "tests.cli.app:registry")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "migrate" in result.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize(("choice", "loop"), [("auto", "uvloop"), ("asyncio", "asyncio")])
def test_worker_runs_on_the_event_loop_asked_for(
    conn: psycopg.Connection[Any], worker: Worker, choice: str, loop: str
) -> None:
    job_id = quick.builder().spawn(conn)
    conn.commit()
    process = worker("tests.cli.app:registry", "--loop", choice)
    assert process.wait_for("worker_started")["loop"] == loop  # auto: uvloop, in the dev extra
    assert process.wait_for("job_completed")["job_id"] == str(job_id)
    process.signal(signal.SIGTERM)
    assert process.wait() == 0


def test_without_uvloop_auto_picks_asyncio_and_uvloop_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # what `import uvloop` sees uninstalled
    assert event_loop_runner("auto") is asyncio.run
    assert event_loop_runner("asyncio") is asyncio.run
    with pytest.raises(CliError, match=r"--loop uvloop: uvloop is not installed") as raised:
        event_loop_runner("uvloop")
    assert raised.value.code == EXIT_USAGE
