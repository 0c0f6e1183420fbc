"""``sqlxmq channels``, ``pause``, ``resume`` and ``limit``, run as the real console program."""

from __future__ import annotations

import json
from typing import Any

import psycopg

from sqlxmq_py import CurrentJob, job, spawn_many
from sqlxmq_py.admin import ChannelInfo, list_channels

from .conftest import Cli, run_cli


@job(channel_name="mail")
async def send_mail(current_job: CurrentJob) -> None: ...


def test_pause_limit_resume_and_list(
    cli: Cli, conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    spawn_many(conn, [send_mail.builder() for _ in range(3)])
    conn.commit()
    result = cli("pause", "mail")
    assert (result.returncode, result.stdout, result.stderr) == (0, "paused mail\n", "")
    result = cli("limit", "reports", "2")
    assert (result.returncode, result.stdout) == (0, "limited reports to 2 running jobs\n")
    result = cli("channels")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "CHANNEL  STATE   LIMIT  READY  RUNNING",
        "mail     paused      -      3        0",
        "reports  active      2      0        0",
    ]
    result = cli("--json", "channels")
    assert json.loads(result.stdout)["channels"][0] == {
        "channel_name": "mail",
        "paused": True,
        "max_running": None,
        "ready": 3,
        "running": 0,
    }
    status = cli("status").stdout
    assert "Paused channels (runners start none of their jobs" in status
    assert "\n  mail\n" in status
    assert json.loads(cli("--json", "status").stdout)["paused_channels"] == ["mail"]
    assert cli("resume", "mail").stdout == "resumed mail\n"
    assert "Paused channels: none" in cli("status").stdout
    assert cli("limit", "reports", "none").stdout == "removed the limit of reports\n"
    assert list_channels(db) == [
        ChannelInfo(channel_name="mail", paused=False, max_running=None, ready=3, running=0)
    ]


def test_bad_limits_are_usage_errors_and_change_nothing(
    cli: Cli, db: psycopg.Connection[Any]
) -> None:
    for bad in ("-1", "many", "1.5"):
        result = cli("limit", "mail", bad)
        assert result.returncode == 2, result.stderr
        assert "expected a whole number >= 0 or 'none'" in result.stderr
    assert cli("pause").returncode == 2  # no channel named
    assert list_channels(db) == []
    result = cli("channels")
    assert (result.returncode, result.stdout) == (0, "No channels: no jobs, limits or pauses.\n")


def test_a_database_without_the_schema_is_an_error(empty_dsn: str) -> None:
    for args in (("pause", "mail"), ("channels",), ("limit", "mail", "1")):
        result = run_cli("--dsn", empty_dsn, *args)
        assert result.returncode == 1, args
        assert result.stderr.startswith("sqlxmq: error:"), result.stderr
        assert "migrate" in result.stderr
