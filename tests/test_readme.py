"""Every ``python`` code block of the README runs as written, each as its own program."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.MULTILINE | re.DOTALL)


def test_readme_opens_with_the_two_setup_commands() -> None:
    first_block = README.read_text().split("```")[1]
    commands = [line for line in first_block.splitlines() if line.startswith("python3 -m venv")]
    assert len(commands) == 2
    assert "sqlxmq_py.demo" in commands[0]
    assert commands[1].endswith("pytest")


OTHERS = """
SELECT mq_spawn(
    'someone_else.job_' || (i % 5), json_build_object('i', i),
    channel_name => (ARRAY['', 'emails', 'reports', 'ledger', 'greetings', 'receipts',
                           'payments', 'newsletter', 'other'])[i % 9 + 1],
    delay => CASE WHEN i % 7 = 0 THEN interval '1 hour' ELSE interval '0' END,
    retain_for => interval '1 hour'
)
FROM generate_series(1, 120) AS i
"""


@pytest.fixture
def busy_dsn(dsn: str) -> str:
    """A migrated database already holding other work: 120 jobs of names no example knows
    (ready and scheduled) in the channels the examples use and others, a few of them failed.
    (Not in ``thumbnails``: the pull consumer's channel is its own, as a channel is for the
    runners subscribed to it.)"""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(OTHERS)
        conn.execute(
            "UPDATE mq_jobs SET state = 'f', attempts = max_attempts "
            "WHERE id IN (SELECT id FROM mq_jobs WHERE state = 'r' ORDER BY id LIMIT 10)"
        )
    return dsn


@pytest.mark.parametrize("database", ["fresh", "busy"])
@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(
    index: int, database: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Each block, as a user would paste it: on a fresh database without the schema, and on
    one that already holds other jobs (no example may assume it has the queue to itself)."""
    dsn = request.getfixturevalue("empty_dsn" if database == "fresh" else "busy_dsn")
    script = tmp_path / f"readme_example_{index}.py"
    script.write_text(BLOCKS[index])
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SQLXMQ_DSN": dsn},
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    if database == "busy":
        with psycopg.connect(dsn, autocommit=True) as conn:
            left = conn.execute(
                "SELECT count(*) FROM mq_payloads WHERE name LIKE 'someone\\_else.%%'"
            ).fetchone()
        assert left == (120,)  # nothing of the others' was run, burned or cleared


def test_quick_start_prints_the_greeting(dsn: str, tmp_path: Path) -> None:
    script = tmp_path / "quick_start.py"
    script.write_text(BLOCKS[0])
    out = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SQLXMQ_DSN": dsn},
        check=True,
    ).stdout
    assert "Hello, John!" in out
