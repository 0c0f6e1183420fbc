"""What every command shares: exit codes, the database connection, argument types, and turning
errors into one line that never shows a password."""

from __future__ import annotations

import argparse
import os
import re
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, NoReturn, TypeAlias

import psycopg
from psycopg.conninfo import conninfo_to_dict

from .._logging import redact_conninfo
from ..embedded import resolve_dsn
from ..errors import (
    ConfigurationError,
    EmbeddedServerError,
    SchemaError,
    SqlxmqError,
)
from ._output import terminal_safe

__all__ = [
    "EXIT_ERROR",
    "EXIT_OK",
    "EXIT_SIGINT",
    "EXIT_SIGTERM",
    "EXIT_USAGE",
    "CliError",
    "Commands",
    "Context",
    "Parser",
    "add_command",
    "describe_error",
    "err",
    "parse_duration",
    "parse_job_id",
    "port_number",
    "positive_int",
    "scrub",
]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_SIGINT = 130
EXIT_SIGTERM = 143

DEFAULT_CONNECT_TIMEOUT = 10


class Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on stderr (exit 2)."""

    def error(self, message: str) -> NoReturn:
        """Reports a usage error in one line and exits with status 2."""
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


Commands: TypeAlias = "argparse._SubParsersAction[Parser]"


def add_global_options(parser: argparse.ArgumentParser, *, on_command: bool) -> None:
    """The options every command takes; on a command they are optional overrides, so that
    ``sqlxmq --json jobs`` and ``sqlxmq jobs --json`` both work."""
    unset: Any = argparse.SUPPRESS if on_command else None
    parser.add_argument(
        "--dsn",
        metavar="DSN",
        default=unset,
        help="PostgreSQL connection string (default: $SQLXMQ_DSN, else $DATABASE_URL, else the "
        "embedded server)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS if on_command else False,
        help="machine-readable JSON output (worker: JSON log lines)",
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS if on_command else False,
        help="debug logs, and a traceback with unexpected errors",
    )


def add_command(
    commands: Commands, name: str, *, summary: str, description: str, epilog: str | None = None
) -> Parser:
    """Adds a command with the global options and a layout-preserving help formatter."""
    parser = commands.add_parser(
        name,
        help=summary,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_global_options(parser, on_command=True)
    return parser


class CliError(Exception):
    """A failure to report as one line on stderr, with the exit code to return."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass
class Context:
    """The global options and the connection string they resolve to."""

    dsn_option: str | None
    json: bool
    debug: bool
    _conninfo: str | None = field(default=None, init=False)

    def conninfo(self) -> str:
        """``--dsn``, else ``$SQLXMQ_DSN``, else ``$DATABASE_URL``, else the embedded server's
        (started on demand)."""
        if self._conninfo is None:
            self._conninfo = resolve_dsn(self.dsn_option)
            check_conninfo(self._conninfo)
        return self._conninfo

    def database(self) -> str:
        """The connection string without its password, to show."""
        return redact_conninfo(self.conninfo())

    @contextmanager
    def connect(self) -> Iterator[psycopg.Connection[Any]]:
        """An autocommit connection: every admin call commits on its own."""
        conninfo = self.conninfo()
        with psycopg.connect(conninfo, autocommit=True, **connect_kwargs(conninfo)) as conn:
            yield conn


def check_conninfo(conninfo: str) -> None:
    """Raises a usage error for a connection string that cannot be parsed."""
    try:
        conninfo_to_dict(conninfo)
    except psycopg.Error as exc:
        detail = scrub(_one_line(str(exc)), conninfo)
        raise CliError(f"invalid connection string: {detail}", EXIT_USAGE) from exc


def connect_kwargs(conninfo: str) -> dict[str, Any]:
    """A connect timeout unless the DSN or ``$PGCONNECT_TIMEOUT`` sets one."""
    if "connect_timeout" in conninfo_to_dict(conninfo) or os.environ.get("PGCONNECT_TIMEOUT"):
        return {}
    return {"connect_timeout": DEFAULT_CONNECT_TIMEOUT}


_URL_PASSWORD = re.compile(r"://[^:/@\s]*:([^@\s]+)@")
_KEYWORD_PASSWORD = re.compile(r"password\s*=\s*('(?:[^'\\]|\\.)*'|[^\s]+)", re.IGNORECASE)


def _secrets(conninfo: str | None) -> list[str]:
    if not conninfo:
        return []
    found: set[str] = set()
    try:
        password = conninfo_to_dict(conninfo).get("password")
        if password:
            found.add(str(password))
    except Exception:  # noqa: S110 - unparsable: the patterns below still find it
        pass
    found.update(m.group(1) for m in _URL_PASSWORD.finditer(conninfo))
    for m in _KEYWORD_PASSWORD.finditer(conninfo):
        found.add(m.group(1))
        found.add(m.group(1).strip("'"))
    return sorted((s for s in found if s), key=len, reverse=True)


def scrub(text: str, conninfo: str | None) -> str:
    """``text`` with every password of ``conninfo`` (and of ``$SQLXMQ_DSN`` and
    ``$DATABASE_URL``) masked."""
    candidates = [conninfo, os.environ.get("SQLXMQ_DSN"), os.environ.get("DATABASE_URL")]
    for candidate in candidates:
        for secret in _secrets(candidate):
            text = text.replace(secret, "********")
    return text


def _one_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return "; ".join(lines) if lines else "(no detail)"


def describe_error(exc: BaseException, conninfo: str | None) -> tuple[str, int]:
    """One line saying what went wrong, and the exit code."""
    code = EXIT_ERROR
    if isinstance(exc, CliError):
        message, code = exc.message, exc.code
    elif isinstance(exc, SchemaError | psycopg.errors.UndefinedTable):
        message = "the database has no sqlxmq_py schema: run `sqlxmq migrate` first"
    elif isinstance(exc, psycopg.errors.UndefinedFunction | psycopg.errors.UndefinedColumn):
        message = "the database schema is older than this sqlxmq_py: run `sqlxmq migrate`"
    elif isinstance(exc, psycopg.OperationalError):
        where = redact_conninfo(conninfo) if conninfo else "the database"
        message = f"cannot reach the database ({where}): {_one_line(str(exc))}"
    elif isinstance(exc, psycopg.ProgrammingError) and "connection" in str(exc).lower():
        message, code = f"invalid connection string: {_one_line(str(exc))}", EXIT_USAGE
    elif isinstance(exc, psycopg.Error):
        message = f"database error: {_one_line(str(exc))}"
    elif isinstance(exc, ConfigurationError):
        message, code = _one_line(str(exc)), EXIT_USAGE
    elif isinstance(exc, SchemaError | EmbeddedServerError | SqlxmqError):
        message = _one_line(str(exc))
    else:
        message = f"unexpected error: {type(exc).__name__}: {_one_line(str(exc))}"
        message += " (run with --debug for the traceback)"
    return scrub(message, conninfo), code


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)", re.IGNORECASE)
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """``90s``, ``15m``, ``12h``, ``30d``, ``2w`` or a combination like ``1h30m`` (argparse
    type)."""
    compact = text.strip().replace(" ", "")
    parts = list(_DURATION_PART.finditer(compact))
    if not compact or not parts or "".join(p.group(0) for p in parts) != compact:
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r}: use a number and a unit, like 90s, 15m, 12h, 30d or 2w"
        )
    seconds = sum(float(p.group(1)) * _UNITS[p.group(2).lower()] for p in parts)
    return timedelta(seconds=seconds)


def parse_job_id(text: str) -> uuid.UUID:
    """A job id (argparse type)."""
    try:
        return uuid.UUID(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid job id {text!r}: expected a UUID like 0192f5d2-7c1e-7a41-9b6e-3c0d1f2a4b5c"
        ) from None


def positive_int(text: str) -> int:
    """An integer of at least 1 (argparse type)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of at least 1, got {value}")
    return value


def port_number(text: str) -> int:
    """A TCP port, 0 (any free port) to 65535 (argparse type)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 to 65535, got {value}")
    return value


def err(message: str) -> None:
    """Writes one line to stderr (terminal-safe: it may quote names and errors users chose)."""
    sys.stderr.write(terminal_safe(message, keep_newlines=True) + "\n")
    sys.stderr.flush()
