"""Every ``python`` code block of the README runs as written, each as its own program."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.MULTILINE | re.DOTALL)


def test_readme_opens_with_the_two_setup_commands() -> None:
    first_block = README.read_text().split("```")[1]
    commands = [line for line in first_block.splitlines() if line.startswith("python3 -m venv")]
    assert len(commands) == 2
    assert "sqlxmq_py.demo" in commands[0]
    assert commands[1].endswith("pytest")


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index: int, dsn: str, tmp_path: Path) -> None:
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
