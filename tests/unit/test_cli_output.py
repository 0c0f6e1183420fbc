"""What the command line shows of text users chose: every character a terminal acts on is
escaped, every other character shown as it is."""

from __future__ import annotations

import io
import json

import pytest

from sqlxmq_py.cli._output import (
    first_line,
    print_json,
    render_table,
    terminal_safe,
    terminal_safe_event,
)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("plain name", "plain name"),
        ("café ☕ 名前 \\x1b", "café ☕ 名前 \\x1b"),  # a typed backslash stays
        ("evil\x1b[2J\nname", "evil\\x1b[2J\\nname"),
        ("over\rwrite\ttab\x00\x7f", "over\\rwrite\\ttab\\x00\\x7f"),
        ("c1\x9b31m\x85", "c1\\x9b31m\\x85"),
        ("bidi\u202eop\u2066\u2069\u200f\u061c", "bidi\\u202eop\\u2066\\u2069\\u200f\\u061c"),
        ("lines\u2028\u2029", "lines\\u2028\\u2029"),
    ],
)
def test_terminal_safe_escapes_what_a_terminal_acts_on(text: str, shown: str) -> None:
    assert terminal_safe(text) == shown


def test_multi_line_text_keeps_its_lines_and_tabs_only() -> None:
    assert terminal_safe("a\n\tb\rc\x1b", keep_newlines=True) == "a\n\tb\\rc\\x1b"


def test_tables_and_first_lines_are_safe() -> None:
    table = render_table(["name"], [["x\x1b[2J\ny"]])
    assert table.splitlines() == ["NAME", "x\\x1b[2J\\ny"]
    assert first_line("boom\x1b[31m\nsecond") == "boom\\x1b[31m"


def test_json_escapes_what_json_dumps_leaves() -> None:
    out = io.StringIO()
    value = {"name": "e\x1b\x9b\u202e\u2028é"}
    print_json(value, out)
    text = out.getvalue()
    assert not any((ord(c) < 32 and c != "\n") or 0x7F <= ord(c) <= 0x9F for c in text)
    assert "\u202e" not in text
    assert "\u2028" not in text
    assert "é" in text
    assert json.loads(text) == value


def test_console_log_lines_are_safe_and_tracebacks_keep_their_lines() -> None:
    event = terminal_safe_event(
        None,
        "warning",
        {
            "event": "job_failed",
            "job_name": "evil\x1b[2J",
            "attempt": 2,
            "exception": "Traceback:\n  boom\x1b[31m",
        },
    )
    assert event == {
        "event": "job_failed",
        "job_name": "evil\\x1b[2J",
        "attempt": 2,
        "exception": "Traceback:\n  boom\\x1b[31m",
    }
