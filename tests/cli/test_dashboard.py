"""``sqlxmq dashboard`` calls ``sqlxmq_py.web.serve`` through its contract, imported lazily."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest

from sqlxmq_py.cli import main

NO_REPLICA = {"read_conninfo": None}


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    """Replaces the dashboard module with one whose ``serve`` records its calls."""
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    fake = types.ModuleType("sqlxmq_py.web")

    def serve(*args: Any, **kwargs: Any) -> None:
        calls.append((args, kwargs))

    fake.serve = serve  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "sqlxmq_py.web", fake)
    return calls


@pytest.mark.usefixtures("in_process")
def test_dashboard_serves_with_the_token_from_the_environment(
    dsn: str,
    served: list[tuple[tuple[Any, ...], dict[str, Any]]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SQLXMQ_DASHBOARD_TOKEN", "from-env")
    assert main(["--dsn", dsn, "dashboard", "--port", "9123"]) == 0
    assert served == [
        ((dsn,), {"host": "127.0.0.1", "port": 9123, "token": "from-env", "read_conninfo": None})
    ]
    assert "http://127.0.0.1:9123/" in capsys.readouterr().err


@pytest.mark.usefixtures("in_process")
def test_dashboard_token_option_wins_and_an_open_host_warns_that_reads_are_open(
    dsn: str,
    served: list[tuple[tuple[Any, ...], dict[str, Any]]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SQLXMQ_DASHBOARD_TOKEN", "from-env")
    assert main(["--dsn", dsn, "dashboard", "--token", "from-option"]) == 0
    monkeypatch.delenv("SQLXMQ_DASHBOARD_TOKEN")
    assert main(["--dsn", dsn, "dashboard", "--host", "0.0.0.0"]) == 0
    assert served == [
        ((dsn,), {"host": "127.0.0.1", "port": 8040, "token": "from-option", **NO_REPLICA}),
        ((dsn,), {"host": "0.0.0.0", "port": 8040, "token": None, **NO_REPLICA}),
    ]
    warned = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warned) == 1  # only for the open host
    assert "0.0.0.0: anyone who can reach it can read every job" in warned[0]
    assert "it cannot change anything" in warned[0]  # no token: read-only


@pytest.mark.usefixtures("in_process")
def test_dashboard_without_the_extra_says_how_to_install_it(
    dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "sqlxmq_py.web", None)  # import fails
    assert main(["--dsn", dsn, "dashboard"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert "pip install 'sqlxmq_py[dashboard]'" in lines[0]


@pytest.mark.usefixtures("in_process")
def test_dashboard_reads_from_the_read_dsn(
    dsn: str, served: list[tuple[tuple[Any, ...], dict[str, Any]]]
) -> None:
    replica = "postgresql://reader@replica.example:5432/app"
    assert main(["--dsn", dsn, "dashboard", "--read-dsn", replica]) == 0
    assert served == [
        ((dsn,), {"host": "127.0.0.1", "port": 8040, "token": None, "read_conninfo": replica})
    ]
