"""The ``sqlxmq`` commands, run as the real console program against the test database."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from sqlxmq_py import CurrentJob, exists, job, spawn_many
from sqlxmq_py.admin import blocked_chains, job_status, set_channel_limit
from sqlxmq_py.cli import main
from sqlxmq_py.migrate import load_migrations

from ..helpers import count_jobs
from .conftest import Cli, clean_env, run_cli

COMMANDS = [
    "migrate",
    "worker",
    "status",
    "jobs",
    "show",
    "workers",
    "retry",
    "cancel",
    "purge",
    "clear",
    "delete",
    "run-now",
    "channels",
    "pause",
    "resume",
    "limit",
    "demo",
    "dashboard",
    "workflows",
    "workflow",
    "workflow-cancel",
    "workflow-retry",
]


@job(name="send_mail", channel_name="mail")  # a short name, for `jobs --name send_mail`
async def send_mail(current_job: CurrentJob) -> None: ...


@job(channel_name="ledger", ordered=True)
async def ledger(current_job: CurrentJob) -> None: ...


def fail_for_good(db: psycopg.Connection[Any], job_id: uuid.UUID, error: str) -> None:
    """Makes a job failed, as a runner would after its last attempt."""
    db.execute(
        "UPDATE mq_jobs SET state = 'f', attempts = max_attempts, lease_token = NULL, "
        "attempt_at = now() - interval '2 hours' WHERE id = %s",
        (job_id,),
    )
    db.execute("UPDATE mq_payloads SET last_error = %s WHERE id = %s", (error, job_id))


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of a failed command; no traceback."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_help_lists_every_command_and_the_exit_codes() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for command in COMMANDS:
        assert f"\n    {command} " in result.stdout
    for code in ("0 ", "1 ", "2 ", "130", "143"):
        assert f"\n  {code}" in result.stdout
    assert "$SQLXMQ_DSN" in result.stdout


@pytest.mark.usefixtures("in_process")
@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_documents_its_options(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: sqlxmq {command}")
    assert "--dsn DSN" in out
    assert "--json" in out


def test_console_script_is_installed_and_runs() -> None:
    script = Path(sys.executable).with_name("sqlxmq")
    result = subprocess.run(
        [str(script), "--version"], capture_output=True, text=True, check=False, env=clean_env()
    )
    assert result.returncode == 0
    assert result.stdout.startswith("sqlxmq_py ")


def test_migrate_applies_the_schema_once(empty_dsn: str) -> None:
    first = run_cli("--dsn", empty_dsn, "migrate")
    assert first.returncode == 0, first.stderr
    names = [m.name for m in load_migrations()]
    for name in names:
        assert name in first.stdout
    again = run_cli("--dsn", empty_dsn, "--json", "migrate")
    assert again.returncode == 0
    assert json.loads(again.stdout)["applied"] == []
    with psycopg.connect(empty_dsn) as conn:
        rows = conn.execute("SELECT name FROM mq_migrations ORDER BY name").fetchall()
    assert [r[0] for r in rows] == names


def test_migrate_sql_prints_the_script_without_a_database() -> None:
    result = run_cli("--dsn", "host=/nonexistent dbname=none", "migrate", "--sql")
    assert result.returncode == 0
    assert "CREATE TABLE" in result.stdout
    assert "INSERT INTO mq_migrations" in result.stdout


def test_status_shows_counts_blocked_chains_and_limits(
    cli: Cli, conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    spawn_many(conn, [send_mail.builder() for _ in range(3)])
    head, *_ = spawn_many(conn, [ledger.builder().set_json(i) for i in range(3)])
    set_channel_limit(conn, "mail", 2)
    conn.commit()
    fail_for_good(db, head, "RuntimeError: ledger closed")

    text = cli("status")
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert any(line.split()[:3] == ["mail", "ready", "3"] for line in lines)
    assert any(line.split()[:3] == ["ledger", "waiting", "2"] for line in lines)
    assert any(line.split()[:3] == ["ledger", "failed", "1"] for line in lines)
    assert str(head) in text.stdout
    assert "RuntimeError: ledger closed" in text.stdout
    assert any(line.split() == ["mail", "2"] for line in lines)

    data = json.loads(cli("--json", "status").stdout)
    queues = {(q["channel"], q["state"]): q["count"] for q in data["queues"]}
    assert queues == {("mail", "ready"): 3, ("ledger", "waiting"): 2, ("ledger", "failed"): 1}
    assert [c["head_id"] for c in data["blocked_chains"]] == [str(head)]
    assert data["blocked_chains"][0]["waiting"] == 2
    assert data["channel_limits"] == {"mail": 2}
    assert "password" not in data["database"] or "********" in data["database"]


def test_status_of_an_empty_queue(cli: Cli) -> None:
    result = cli("status")
    assert result.returncode == 0
    assert "The queue is empty." in result.stdout
    assert "Blocked ordered chains: none" in result.stdout


def test_jobs_lists_and_filters_and_pages(
    cli: Cli, conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    mails = spawn_many(conn, [send_mail.builder().set_job_key(f"k{i}") for i in range(3)])
    entry = ledger.builder().spawn(conn)
    conn.commit()
    fail_for_good(db, mails[0], "ValueError: bad address")

    table = cli("jobs")
    assert table.returncode == 0
    header, *rows = table.stdout.splitlines()
    assert header.split()[:4] == ["ID", "NAME", "STATE", "CHANNEL"]
    assert [row.split()[0] for row in rows] == [str(entry), *map(str, reversed(mails))]
    assert "ValueError: bad address" in table.stdout

    def ids(*args: str) -> list[str]:
        result = cli("--json", "jobs", *args)
        assert result.returncode == 0, result.stderr
        return [j["id"] for j in json.loads(result.stdout)]

    assert ids("--state", "failed") == [str(mails[0])]
    assert ids("--state", "failed", "--state", "ready", "--channel", "ledger") == [str(entry)]
    assert ids("--name", "send_mail", "--key", "k1") == [str(mails[1])]
    first_page = cli("jobs", "--limit", "2")
    assert f"--before {mails[2]}" in first_page.stderr
    assert ids("--limit", "2", "--before", str(mails[2])) == [str(mails[1]), str(mails[0])]


def test_show_prints_the_full_error(
    cli: Cli, conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    job_id = send_mail.builder().set_job_key("welcome-1").spawn(conn)
    conn.commit()
    trace = "RuntimeError: smtp down\n\nTraceback (most recent call last):\n  File x, line 1"
    fail_for_good(db, job_id, trace)

    text = cli("show", str(job_id))
    assert text.returncode == 0
    assert "state             failed" in text.stdout
    assert "welcome-1" in text.stdout
    assert "  Traceback (most recent call last):" in text.stdout
    data = json.loads(cli("--json", "show", str(job_id)).stdout)
    assert data["id"] == str(job_id)
    assert data["last_error"] == trace
    assert data["attempts"] == data["max_attempts"]


def test_show_of_an_unknown_job_fails_in_one_line(cli: Cli) -> None:
    missing = uuid.uuid4()
    result = cli("show", str(missing))
    assert result.returncode == 1
    assert one_error_line(result).startswith(f"sqlxmq: error: no job {missing}")


def test_retry_runs_failed_jobs_again_and_reports_the_others(
    cli: Cli, conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    failed, waiting = spawn_many(conn, [send_mail.builder(), send_mail.builder()])
    conn.commit()
    fail_for_good(db, failed, "boom")

    result = cli("retry", str(failed), str(waiting))
    assert result.returncode == 1
    assert f"retried {failed}" in result.stdout
    assert str(waiting) in one_error_line(result)
    status = job_status(db, failed)
    assert status is not None
    assert status.state == "ready"


def test_retry_unblocks_a_chain(
    cli: Cli, conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    head, _ = spawn_many(conn, [ledger.builder(), ledger.builder()])
    conn.commit()
    fail_for_good(db, head, "boom")
    assert len(blocked_chains(db)) == 1
    result = cli("--json", "retry", str(head))
    assert result.returncode == 0
    assert json.loads(result.stdout) == {"retried": [str(head)], "not_retried": []}
    assert blocked_chains(db) == []


def test_cancel_waiting_jobs_and_report_unknown_ones(
    cli: Cli, conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    job_id = send_mail.builder().spawn(conn)
    conn.commit()
    unknown = uuid.uuid4()
    result = cli("cancel", str(job_id), str(unknown), "--reason", "duplicate signup")
    assert result.returncode == 1
    assert f"cancelled {job_id}" in result.stdout
    assert str(unknown) in one_error_line(result)
    assert not exists(db, job_id)
    history = db.execute("SELECT state, last_error FROM mq_history WHERE id = %s", (job_id,))
    assert history.fetchone() == ("cancelled", "duplicate signup")


def test_cancel_running_job_is_requested(
    cli: Cli, conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    job_id = send_mail.builder().spawn(conn)
    conn.commit()
    db.execute(  # as if a runner held it
        "UPDATE mq_jobs SET state = 'l', lease_token = gen_random_uuid() WHERE id = %s", (job_id,)
    )
    result = cli("--json", "cancel", str(job_id))
    assert result.returncode == 0
    assert json.loads(result.stdout) == {"outcomes": {str(job_id): "requested"}, "unknown": []}
    status = job_status(db, job_id)
    assert status is not None
    assert status.cancel_requested


def test_purge_removes_old_failed_jobs_only(
    cli: Cli, conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    old, recent = spawn_many(conn, [send_mail.builder(), send_mail.builder()])
    conn.commit()
    fail_for_good(db, old, "old")  # failed 2 hours ago
    fail_for_good(db, recent, "recent")
    db.execute("UPDATE mq_jobs SET attempt_at = now() WHERE id = %s", (recent,))

    result = cli("purge", "--failed-older-than", "1h", "--history-older-than", "30d")
    assert result.returncode == 0, result.stderr
    assert "Purged 1 failed job and 0 history entries" in result.stdout
    assert "Purging" in result.stderr
    assert not exists(db, old)
    assert exists(db, recent)
    again = cli("--json", "purge", "--failed-older-than", "90m")
    assert json.loads(again.stdout)["failed"] == 0


@pytest.mark.parametrize("bad", ["3x", "h", "-5m", "10", "1h30"])
def test_purge_rejects_a_bad_duration_in_one_line(cli: Cli, bad: str) -> None:
    result = cli("purge", f"--failed-older-than={bad}")
    assert result.returncode == 2
    line = one_error_line(result)
    assert "invalid duration" in line
    assert "--failed-older-than" in line


def test_clear_asks_for_confirmation(
    cli: Cli, conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    spawn_many(conn, [send_mail.builder() for _ in range(2)])
    kept = ledger.builder().spawn(conn)
    conn.commit()

    declined = cli("clear", "mail", input="n\n")
    assert declined.returncode == 1
    assert "Delete all 2 jobs of mail" in declined.stderr
    assert "aborted: nothing was deleted" in declined.stderr
    assert count_jobs(db) == 3

    accepted = cli("clear", "mail", input="y\n")
    assert accepted.returncode == 0
    assert "Deleted 2 jobs from mail." in accepted.stdout
    assert count_jobs(db) == 1
    assert exists(db, kept)


def test_clear_with_yes_does_not_ask(
    cli: Cli, conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    spawn_many(conn, [send_mail.builder(), ledger.builder()])
    conn.commit()
    result = cli("--json", "clear", "mail", "ledger", "--yes", input="")
    assert result.returncode == 0
    assert json.loads(result.stdout) == {"deleted": 2, "channels": ["mail", "ledger"]}
    assert "[y/N]" not in result.stderr
    assert count_jobs(db) == 0


def test_demo_runs_the_tour(cli: Cli, db: psycopg.Connection[Any]) -> None:
    result = cli("demo", "--jobs", "20")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Spawned 21 jobs in one transaction" in result.stdout
    assert "21/21 finished, 1 failed" in result.stdout
    assert "ledger entries ran in spawn order: yes" in result.stdout
    assert count_jobs(db, "state = 'f'") == 1


def test_dsn_comes_from_the_environment(dsn: str, conn: psycopg.Connection[Any]) -> None:
    send_mail.builder().spawn(conn)
    conn.commit()
    unreachable = "postgresql://nobody@127.0.0.1:1/none"
    from_sqlxmq = run_cli("--json", "jobs", env=clean_env(SQLXMQ_DSN=dsn, DATABASE_URL=unreachable))
    assert from_sqlxmq.returncode == 0, from_sqlxmq.stderr
    assert len(json.loads(from_sqlxmq.stdout)) == 1
    from_database_url = run_cli("--json", "jobs", env=clean_env(DATABASE_URL=dsn))
    assert len(json.loads(from_database_url.stdout)) == 1
    option_wins = run_cli("--dsn", unreachable, "jobs", env=clean_env(SQLXMQ_DSN=dsn))
    assert option_wins.returncode == 1


def test_unreachable_database_fails_in_one_line_without_the_password() -> None:
    result = run_cli("--dsn", "postgresql://app:hunter2secret@127.0.0.1:1/app", "status")
    assert result.returncode == 1
    line = one_error_line(result)
    assert line.startswith("sqlxmq: error: cannot reach the database")
    assert "hunter2secret" not in result.stderr + result.stdout
    assert "********" in line


def test_wrong_password_is_never_printed(server_dsn: str, is_embedded: bool) -> None:
    params = conninfo_to_dict(server_dsn)
    params.update(password="not-the-password-x9", dbname="no_such_db_for_cli")
    result = run_cli("--dsn", make_conninfo(**{k: str(v) for k, v in params.items()}), "jobs")
    assert result.returncode == 1
    one_error_line(result)
    assert "not-the-password-x9" not in result.stderr + result.stdout


@pytest.mark.parametrize(
    "dsn",
    ["not a dsn secretword", "postgresql://u:secretword@[::1"],
)
def test_unparsable_dsn_is_a_usage_error(dsn: str) -> None:
    result = run_cli("--dsn", dsn, "jobs")
    assert result.returncode == 2
    assert one_error_line(result).startswith("sqlxmq: error: invalid connection string")
    assert "secretword" not in result.stderr


def test_database_without_schema_says_to_migrate(empty_dsn: str) -> None:
    result = run_cli("--dsn", empty_dsn, "status")
    assert result.returncode == 1
    assert "run `sqlxmq migrate`" in one_error_line(result)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["show", "not-a-uuid"], "invalid job id 'not-a-uuid'"),
        (["retry"], "give job ids, or filter options"),
        (["jobs", "--state", "lost"], "invalid choice: 'lost'"),
        (["jobs", "--limit", "0"], "at least 1"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        ([], "no command given"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(dsn: str, args: list[str], message: str) -> None:
    result = run_cli("--dsn", dsn, *args)
    assert result.returncode == 2
    assert message in one_error_line(result)


def test_global_options_work_after_the_command(cli: Cli, conn: psycopg.Connection[Any]) -> None:
    send_mail.builder().spawn(conn)
    conn.commit()
    result = cli("jobs", "--json")
    assert result.returncode == 0
    assert len(json.loads(result.stdout)) == 1
