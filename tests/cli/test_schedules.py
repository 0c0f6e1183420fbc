"""``sqlxmq schedules`` and ``sqlxmq schedule enable|disable|delete|trigger``, run as the real
console program."""

from __future__ import annotations

import json
from typing import Any

import psycopg

from sqlxmq_py.admin import list_schedules

from .conftest import Cli


def _schedule(db: psycopg.Connection[Any], name: str) -> None:
    db.execute(
        "INSERT INTO mq_schedules (name, cron, timezone, job_name, channel_name, payload_json, "
        "backfill, last_tick) VALUES (%s, '0 3 * * *', 'Europe/Paris', 'nightly_report', "
        "'reports', '{\"kind\": \"daily\"}', interval '2 hours', '2026-01-01T00:00:00Z')",
        (name,),
    )


def test_list_as_text_and_json(cli: Cli, db: psycopg.Connection[Any]) -> None:
    result = cli("schedules")
    assert (result.returncode, result.stdout) == (
        0,
        "No schedules: no runner has recorded a cron schedule.\n",
    )
    _schedule(db, "nightly")
    result = cli("schedules")
    assert result.returncode == 0, result.stderr
    header, row = result.stdout.splitlines()
    assert header.split() == [
        "SCHEDULE", "JOB", "CRON", "TIME", "ZONE", "NEXT", "TICK", "LAST", "TICK", "BACKFILL",
        "STATE",
    ]  # fmt: skip
    (listed,) = list_schedules(db)
    assert listed.next_tick is not None
    assert row.split()[:5] == ["nightly", "nightly_report", "0", "3", "*"]
    assert "Europe/Paris" in row
    assert "enabled" in row
    assert listed.next_tick.strftime("%Y-%m-%d %H:%M:%SZ") in row
    result = cli("--json", "schedules")
    assert result.returncode == 0, result.stderr
    (one,) = json.loads(result.stdout)["schedules"]
    assert one["name"] == "nightly"
    assert (one["cron"], one["timezone"], one["enabled"]) == ("0 3 * * *", "Europe/Paris", True)
    assert one["backfill"] == 7200.0
    assert one["next_tick"] == listed.next_tick.isoformat()
    assert one["last_spawned_tick"] is None


def test_disable_enable_trigger_and_delete(cli: Cli, db: psycopg.Connection[Any]) -> None:
    _schedule(db, "nightly")
    result = cli("schedule", "disable", "nightly")
    assert (result.returncode, result.stdout, result.stderr) == (0, "disabled nightly\n", "")
    assert "disabled" in cli("schedules").stdout
    result = cli("--json", "schedule", "enable", "nightly")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"schedule": "nightly", "action": "enable", "job_id": None}
    assert [s.enabled for s in list_schedules(db)] == [True]

    result = cli("schedule", "trigger", "nightly")
    assert result.returncode == 0, result.stderr
    (job_id,) = db.execute("SELECT id FROM mq_jobs").fetchone() or ()
    assert result.stdout == f"triggered nightly: spawned job {job_id}\n"

    result = cli("schedule", "delete", "nightly", input="n\n")
    assert result.returncode == 1
    assert "aborted" in result.stderr
    assert [s.name for s in list_schedules(db)] == ["nightly"]
    result = cli("schedule", "delete", "nightly", input="y\n")
    assert (result.returncode, result.stdout) == (0, "deleted nightly\n")
    _schedule(db, "nightly")
    result = cli("schedule", "delete", "--yes", "nightly")
    assert (result.returncode, result.stdout) == (0, "deleted nightly\n")
    assert list_schedules(db) == []


def test_unknown_names_exit_1_and_bad_usage_exits_2(cli: Cli) -> None:
    for action in ("enable", "disable", "delete", "trigger"):
        result = cli("schedule", action, "missing", "--yes")
        assert result.returncode == 1, (action, result.stderr)
        assert result.stdout == ""
        assert "no such schedule: 'missing'" in result.stderr
    assert cli("schedule", "delete", "missing").returncode == 1  # nothing to confirm
    assert cli("schedule", "pause", "nightly").returncode == 2
    assert cli("schedule", "enable").returncode == 2
