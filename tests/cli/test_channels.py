"""``sqlxmq channels``, ``pause``, ``resume`` and ``limit``, run as the real console program."""

from __future__ import annotations

import json
from typing import Any

import psycopg

from sqlxmq_py import CurrentJob, JobBuilder, job, spawn_many
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


EVIL = "evil\x1b[2J\nname"
"""A channel name that clears the screen and forges a line if a terminal gets it as it is."""
SHOWN = "evil\\x1b[2J\\nname"


def _no_controls(text: str) -> bool:
    """Whether the text holds no control character but the newlines that end its lines."""
    return not any((ord(c) < 32 and c != "\n") or 0x7F <= ord(c) <= 0x9F for c in text)


def test_names_users_chose_print_escaped(cli: Cli, conn: psycopg.Connection[Any]) -> None:
    job_id = (
        JobBuilder("evil\rjob\u202e")
        .set_channel_name(EVIL)
        .set_channel_args("\x1b]0;title\x07")
        .set_job_key("key\x9b31m")
        .spawn(conn)
    )
    conn.execute(
        "UPDATE mq_payloads SET last_error = %s WHERE id = %s",
        ("Traceback:\n  boom\x1b[31m\rforged\n", job_id),
    )
    conn.commit()
    outputs = {}
    for command in (["channels"], ["jobs"], ["pause", EVIL], ["status"], ["show", str(job_id)]):
        result = cli(*command)
        assert result.returncode == 0, result.stderr
        assert _no_controls(result.stdout), (command, result.stdout)
        outputs[command[0]] = result.stdout
    channels = outputs["channels"].splitlines()
    assert len(channels) == 2  # the header and one channel: no forged line
    assert channels[1].startswith(SHOWN + "  ")
    (listed,) = outputs["jobs"].splitlines()[1:]
    assert f"evil\\rjob\\u202e  ready  {SHOWN} [\\x1b]0;title\\x07]" in listed
    assert outputs["pause"] == f"paused {SHOWN}\n"
    assert f"\n  {SHOWN}\n" in outputs["status"]
    show = outputs["show"]
    assert "key\\x9b31m" in show
    assert "last error:\n  Traceback:\n    boom\\x1b[31m\\rforged\n" in show  # its own lines kept
    # JSON is escaped as JSON escapes, and reads back as the name
    result = cli("--json", "channels")
    assert _no_controls(result.stdout)
    assert "\u202e" not in cli("--json", "jobs").stdout
    assert [c["channel_name"] for c in json.loads(result.stdout)["channels"]] == [EVIL]
    # errors quoting a name are escaped too
    result = cli("show", "not-an-id\x1b[2J")
    assert result.returncode != 0
    assert _no_controls(result.stderr), result.stderr
