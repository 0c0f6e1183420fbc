"""``sqlxmq workers``: the live runners, as a table and as JSON."""

from __future__ import annotations

import asyncio
import json
import os
import socket
from typing import Any

import psycopg

import sqlxmq_py
from sqlxmq_py import CurrentJob, job

from ..helpers import Runner
from .conftest import Cli


async def test_workers_lists_a_running_runner_and_its_running_job(
    cli: Cli, runner: Runner, db: psycopg.Connection[Any]
) -> None:
    started = asyncio.Event()
    release = asyncio.Event()

    @job(channel_name="mail")
    async def blocker(current_job: CurrentJob) -> None:
        started.set()
        await release.wait()

    async with runner([blocker], concurrency=(2, 5), channel_names=["mail"]):
        blocker.builder().spawn(db)
        await started.wait()
        try:
            text = await asyncio.to_thread(cli, "workers")
            data = await asyncio.to_thread(cli, "workers", "--json")
        finally:
            release.set()
    assert text.returncode == 0, text.stderr
    header, row, total = text.stdout.splitlines()
    assert header.split()[:4] == ["HOST", "PID", "RUNNER", "ID"]
    cells = row.split()
    assert cells[:2] == [socket.gethostname(), str(os.getpid())]
    assert cells[3:7] == [sqlxmq_py.__version__, "mail", "2-5", "1"]
    assert cells[-1] in ("idle", "busy")
    assert total == "(1 runner, 1 running jobs)"

    assert data.returncode == 0, data.stderr
    (worker,) = json.loads(data.stdout)
    assert worker["id"] == cells[2]
    assert worker["host"] == socket.gethostname()
    assert worker["pid"] == os.getpid()
    assert worker["channel_names"] == ["mail"]
    assert (worker["min_concurrency"], worker["max_concurrency"]) == (2, 5)
    assert worker["running"] == 1
    assert worker["stale"] is False

    after = await asyncio.to_thread(cli, "workers")
    assert after.stdout == "No runner is announced: none is running against this database.\n"


def test_workers_marks_a_stale_runner(cli: Cli, db: psycopg.Connection[Any]) -> None:
    db.execute(
        "INSERT INTO mq_listeners (id, host, pid, heartbeat_at) "
        "VALUES (gen_random_uuid(), 'gone-host', 77, now() - interval '2 minutes')"
    )
    text = cli("workers")
    assert text.returncode == 0, text.stderr
    _, row, total = text.stdout.splitlines()
    assert row.split()[:2] == ["gone-host", "77"]
    assert row.split()[-1] == "STALE"
    assert total == "(1 runner, 0 running jobs, 1 stale)"
    (worker,) = json.loads(cli("--json", "workers").stdout)
    assert worker["stale"] is True
    assert worker["channel_names"] is None
