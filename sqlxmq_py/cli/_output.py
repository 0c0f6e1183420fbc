"""Output of the command-line interface: aligned tables for people, JSON for programs.

Channel names, job names, keys, errors and results are chosen by whoever spawns jobs, and a
terminal acts on some characters instead of showing them: an ANSI escape can clear the screen
or retitle the window, a carriage return or a newline can overwrite or forge a line, a bidi
override can make text read backwards. Human output shows every such character escaped
(``terminal_safe``), on a terminal or not; JSON output escapes them as JSON does."""

from __future__ import annotations

import dataclasses
import enum
import json
import re
import sys
import uuid
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, TextIO

__all__ = [
    "first_line",
    "human_age",
    "human_time",
    "jsonable",
    "print_json",
    "render_table",
    "terminal_safe",
    "terminal_safe_event",
]

# C0 and C1 controls and DEL, the line and paragraph separators, and the bidi controls
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")
_UNSAFE_BUT_NEWLINES = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]"
)
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal_safe(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with every character a terminal would act on (controls such as ESC, CR and
    newline, DEL, C1 controls, line separators, bidi overrides) shown as an escape: ``\\x1b``,
    ``\\r``, ``\\n``, ``\\u202e``. With ``keep_newlines``, newlines and tabs stay (for
    multi-line text such as a traceback)."""
    pattern = _UNSAFE_BUT_NEWLINES if keep_newlines else _UNSAFE
    return pattern.sub(_escape, text)


def terminal_safe_event(
    _logger: object, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor for console log lines: every text value terminal-safe (a job's
    name, channel or error in a worker's log line); a traceback keeps its lines."""
    for key, value in event_dict.items():
        if isinstance(value, str):
            event_dict[key] = terminal_safe(value, keep_newlines=key == "exception")
    return event_dict


def jsonable(value: object) -> Any:
    """``value`` as plain JSON types: dataclasses become objects, UUIDs strings, datetimes ISO
    8601 strings and timedeltas seconds."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(jsonable(k)): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    return value


# what json.dumps leaves as it is (it escapes the C0 controls only): inside strings, the only
# place they can be, \uXXXX is the same text to a JSON reader
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")


def print_json(value: object, out: TextIO | None = None) -> None:
    """Writes ``value`` as indented JSON and a newline (terminal-safe: no control character
    is written as it is)."""
    stream = out or sys.stdout
    text = json.dumps(jsonable(value), indent=2, ensure_ascii=False)
    stream.write(_JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text) + "\n")


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return human_time(value)
    return terminal_safe(str(value))


def render_table(
    headers: Sequence[str], rows: Iterable[Sequence[object]], *, numeric: Iterable[int] = ()
) -> str:
    """The rows as an aligned text table under upper-case ``headers``; columns whose index is
    in ``numeric`` are right-aligned. ``None`` shows as ``-``; cells are terminal-safe."""
    right = set(numeric)
    text_rows = [[_cell(v) for v in row] for row in rows]
    titles = [h.upper() for h in headers]
    widths = [len(t) for t in titles]
    for row in text_rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(cells)
        ]
        return "  ".join(parts).rstrip()

    return "\n".join([line(titles), *(line(r) for r in text_rows)])


def human_age(seconds: float | None) -> str:
    """A duration for people: ``850ms``, ``12.3s``, ``4m05s``, ``2h03m``, ``3d04h``."""
    if seconds is None:
        return "-"
    s = max(0.0, float(seconds))
    if s < 1:
        return f"{s * 1000:.0f}ms"
    if s < 60:
        return f"{s:.1f}s"
    whole = int(s)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


def human_time(value: datetime | None) -> str:
    """A timestamp in UTC, to the second: ``2025-01-31 12:00:05Z``."""
    if value is None:
        return "-"
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M:%SZ")


def first_line(text: str | None, width: int = 60) -> str:
    """The first line of ``text``, terminal-safe, cut to ``width`` characters (``-`` for
    none)."""
    if not text:
        return "-"
    line = terminal_safe(text.strip().splitlines()[0]) if text.strip() else ""
    return line if len(line) <= width else line[: width - 1] + "…"
