"""One concept per module, each about 400 lines at most: a module that grows past that is a
sign that it holds two concepts, and is split (this test names the ones that grew)."""

from __future__ import annotations

from pathlib import Path

import sqlxmq_py

MOST_LINES = 410
"""About 400: a few lines of slack, so that a docstring's rewrap does not force a split."""


def test_no_module_holds_more_than_about_400_lines() -> None:
    package = Path(sqlxmq_py.__file__).parent
    sizes = {
        str(path.relative_to(package)): len(path.read_text(encoding="utf-8").splitlines())
        for path in package.rglob("*.py")
    }
    assert len(sizes) > 100  # the whole package was read
    assert {name: lines for name, lines in sizes.items() if lines > MOST_LINES} == {}
