"""``sqlxmq retry|cancel|delete|run-now`` with filter options: the count first, the
confirmation (``--yes``), batches, ordered chains a delete would release, exit codes."""

from __future__ import annotations

import json
import uuid
from typing import Any

import psycopg

from sqlxmq_py import CurrentJob, job, spawn_many

from ..helpers import count_jobs
from .conftest import Cli


@job(name="bulk_mail", channel_name="bulk")
async def bulk_mail(current_job: CurrentJob) -> None: ...


@job(channel_name="chain", ordered=True)
async def chained(current_job: CurrentJob) -> None: ...


def _fail(db: psycopg.Connection[Any], ids: list[uuid.UUID], error: str) -> None:
    db.execute("UPDATE mq_jobs SET state = 'f', attempts = max_attempts WHERE id = ANY(%s)", (ids,))
    db.execute("UPDATE mq_payloads SET last_error = %s WHERE id = ANY(%s)", (error, ids))


def test_retry_by_filter_shows_the_count_and_asks(
    cli: Cli, conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    ids = spawn_many(conn, [bulk_mail.builder() for _ in range(5)])
    conn.commit()
    _fail(db, ids[:3], "smtp 421")
    declined = cli("retry", "--channel", "bulk", "--error", "smtp", input="n\n")
    assert declined.returncode == 1
    assert "Retry 3 matching jobs? [y/N]" in declined.stderr
    assert "aborted" in declined.stderr
    assert count_jobs(db, "state = 'f'") == 3

    accepted = cli("retry", "--channel", "bulk", "--batch-size", "2", input="y\n")
    assert accepted.returncode == 0, accepted.stderr
    assert "Retry 3 matching jobs?" in accepted.stderr
    assert "retried 2 of about 3" in accepted.stderr
    assert "Retried 3 jobs." in accepted.stdout
    assert count_jobs(db, "state = 'f'") == 0


def test_cancel_by_filter_with_yes_and_json(
    cli: Cli, conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    spawn_many(conn, [bulk_mail.builder().set_delay(3600) for _ in range(4)])
    conn.commit()
    result = cli("--json", "cancel", "--name", "bulk_mail", "--yes", "--reason", "spam")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"action": "cancel", "matched": 4, "changed": 4}
    assert count_jobs(db) == 0
    nothing = cli("cancel", "--name", "bulk_mail", "--yes")
    assert nothing.returncode == 0
    assert "Nothing to cancel" in nothing.stdout


def test_usage_errors(cli: Cli) -> None:
    neither = cli("retry")
    assert neither.returncode == 2
    assert "give job ids, or filter options" in neither.stderr
    both = cli("cancel", str(uuid.uuid4()), "--channel", "x")
    assert both.returncode == 2
    wrong_state = cli("retry", "--state", "ready")
    assert wrong_state.returncode == 2


def test_delete_asks_before_releasing_a_chain(
    cli: Cli, conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    head, behind = spawn_many(conn, [chained.builder(), chained.builder()])
    conn.commit()
    _fail(db, [head], "broken")
    refused = cli("delete", "--error", "broken", "--yes")
    assert refused.returncode == 1
    assert "1 ordered chain(s)" in refused.stderr
    assert str(head) in refused.stderr
    assert "--release-chains" in refused.stderr
    declined = cli("delete", "--error", "broken", input="n\n")
    assert declined.returncode == 1
    assert count_jobs(db) == 2
    released = cli("delete", "--error", "broken", input="y\ny\n")
    assert released.returncode == 0, released.stderr
    assert "Release these chains? [y/N]" in released.stderr
    assert "Deleted 1 job." in released.stdout
    assert count_jobs(db, "state = 'r'") == 1
    assert count_jobs(db) == 1
    assert behind is not None


def test_delete_with_release_chains_and_yes(
    cli: Cli, conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    head, _ = spawn_many(conn, [chained.builder(), chained.builder()])
    conn.commit()
    _fail(db, [head], "broken")
    result = cli("--json", "delete", "--state", "failed", "--yes", "--release-chains")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"action": "delete", "matched": 1, "changed": 1}


def test_run_now_by_id_and_filter(
    cli: Cli, conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    first, second = spawn_many(conn, [bulk_mail.builder().set_delay(3600) for _ in range(2)])
    conn.commit()
    by_id = cli("run-now", str(first))
    assert by_id.returncode == 0, by_id.stderr
    assert count_jobs(db, "state = 'r'") == 1
    again = cli("run-now", str(first))
    assert again.returncode == 1
    by_filter = cli("run-now", "--channel", "bulk", "--yes")
    assert by_filter.returncode == 0
    assert "Made ready 1 job." in by_filter.stdout
    assert count_jobs(db, "state = 'r'") == 2
    assert second is not None


def test_purge_lists_the_chains_it_keeps(
    cli: Cli, conn: psycopg.Connection[Any], db: psycopg.Connection[Any]
) -> None:
    head, _ = spawn_many(conn, [chained.builder(), chained.builder()])
    conn.commit()
    _fail(db, [head], "broken")
    kept = cli("purge", "--failed-older-than", "0s")
    assert kept.returncode == 0, kept.stderr
    assert "Purged 0 failed jobs" in kept.stdout
    assert "Kept the failed head of 1 ordered chain(s)" in kept.stderr
    assert str(head) in kept.stderr
    released = cli("--json", "purge", "--failed-older-than", "0s", "--release-chains")
    assert json.loads(released.stdout)["failed"] == 1
    assert count_jobs(db, "state = 'r'") == 1
