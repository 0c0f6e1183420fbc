"""The library's logger, and log-safety helpers.

Events have stable snake_case names and keys (``job_failed``, ``job_id=...``). Where they go is
the application's choice, never the library's:

- if the application configured structlog (``structlog.configure``), events go through its
  configuration, as structlog events;
- otherwise they go to the standard ``logging`` module, logger ``sqlxmq_py`` (and its children),
  as one line ``event key=value ...``, with the keys also on the record (``record.sqlxmq``), so
  ``logging.basicConfig(level=...)`` and ``dictConfig`` control them. The library adds a
  ``NullHandler``: nothing is printed until the application configures logging.

Per-job lines are at DEBUG; a disabled level costs one check, nothing is formatted.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import structlog
from psycopg.conninfo import conninfo_to_dict, make_conninfo

__all__ = ["Logger", "logger", "redact_conninfo"]

_ROOT = "sqlxmq_py"
logging.getLogger(_ROOT).addHandler(logging.NullHandler())


class _Line:
    """``event key=value ...``, formatted only if a handler emits the record."""

    __slots__ = ("event", "keys")

    def __init__(self, event: str, keys: Mapping[str, object]) -> None:
        self.event = event
        self.keys = keys

    def __str__(self) -> str:
        parts = [self.event]
        parts.extend(f"{key}={value!r}" for key, value in self.keys.items())
        return " ".join(parts)


class Logger:
    """A logger of events with keys, bound to some context keys (see the module)."""

    __slots__ = ("_context", "_name", "_stdlib")

    def __init__(self, name: str = _ROOT, context: Mapping[str, object] | None = None) -> None:
        """A logger named ``name`` (a child of ``sqlxmq_py``) with ``context`` keys on every
        event."""
        self._name = name
        self._context = dict(context or {})
        self._stdlib = logging.getLogger(name)

    def bind(self, **keys: object) -> Logger:
        """This logger with more context keys."""
        return Logger(self._name, {**self._context, **keys})

    def is_enabled_for(self, level: int) -> bool:
        """Whether an event at ``level`` would go anywhere (so that costly keys can be
        skipped)."""
        if structlog.is_configured():
            check = getattr(structlog.get_logger(self._name), "is_enabled_for", None)
            return True if check is None else bool(check(level))
        return self._stdlib.isEnabledFor(level)

    def debug(self, event: str, **keys: object) -> None:
        """Logs ``event`` at DEBUG."""
        self._log(logging.DEBUG, "debug", event, keys)

    def info(self, event: str, **keys: object) -> None:
        """Logs ``event`` at INFO."""
        self._log(logging.INFO, "info", event, keys)

    def warning(self, event: str, **keys: object) -> None:
        """Logs ``event`` at WARNING."""
        self._log(logging.WARNING, "warning", event, keys)

    def error(self, event: str, **keys: object) -> None:
        """Logs ``event`` at ERROR."""
        self._log(logging.ERROR, "error", event, keys)

    def _log(self, level: int, method: str, event: str, keys: dict[str, object]) -> None:
        if structlog.is_configured():
            bound: Any = structlog.get_logger(self._name)
            getattr(bound, method)(event, **self._context, **keys)
        elif self._stdlib.isEnabledFor(level):
            merged = {**self._context, **keys}
            self._stdlib.log(level, "%s", _Line(event, merged), extra={"sqlxmq": merged})


logger = Logger()
"""The library's logger (``sqlxmq_py``)."""


def redact_conninfo(conninfo: str) -> str:
    """The connection string without its password, safe to log or show."""
    try:
        params = conninfo_to_dict(conninfo)
    except Exception:  # an unparsable string may still hold a secret: show nothing of it
        return "<unparsable connection string>"
    if "password" in params:
        params["password"] = "********"  # noqa: S105 - a mask, not a password
    return make_conninfo(**{k: str(v) for k, v in params.items()})
