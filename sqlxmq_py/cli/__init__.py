"""The ``sqlxmq`` command: migrate, run workers, look at and manage the queue.

Run ``sqlxmq --help`` (or ``python -m sqlxmq_py.cli --help``) for the commands and exit codes.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Sequence

import structlog

from .. import __version__
from . import (
    bulk,
    channels,
    inspect,
    manage,
    rate_limits,
    schedules,
    schema,
    tools,
    worker,
    workflows,
)
from ._common import (
    EXIT_ERROR,
    EXIT_SIGINT,
    EXIT_USAGE,
    Context,
    Parser,
    add_global_options,
    describe_error,
    err,
)
from ._output import terminal_safe_event

__all__ = ["build_parser", "main"]

DESCRIPTION = """\
Operate a sqlxmq_py job queue: apply the schema, run workers, look at and manage jobs.

The database is --dsn, else $SQLXMQ_DSN, else $DATABASE_URL, else the embedded
PostgreSQL (pip install 'sqlxmq_py[embedded]'). Passwords are never printed."""

EPILOG = """\
exit codes:
  0    success
  1    error: the database is unreachable or has no schema, a job id is unknown,
       some jobs could not be retried or cancelled, a schedule is unknown, a
       confirmation was declined
  2    usage error: bad option, duration, job id or connection string, or a
       worker registry that cannot be imported
  130  interrupted by SIGINT (Ctrl-C); a worker: stopped at once by a second signal
  143  a worker stopped at once by a second signal, SIGTERM last

environment:
  SQLXMQ_DSN, DATABASE_URL   the database, when --dsn is not given
  SQLXMQ_DATA_DIR            the embedded server's data directory
  SQLXMQ_DASHBOARD_TOKEN     the dashboard's access token, when --token is not given

Run `sqlxmq COMMAND --help` for a command's options."""


def build_parser() -> Parser:
    """The ``sqlxmq`` argument parser."""
    parser = Parser(
        prog="sqlxmq",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"sqlxmq_py {__version__}")
    add_global_options(parser, on_command=False)
    commands = parser.add_subparsers(
        title="commands", metavar="COMMAND", dest="command", parser_class=Parser
    )
    schema.register(commands)
    worker.register(commands)
    inspect.register(commands)
    manage.register(commands)
    bulk.register(commands)
    channels.register(commands)
    schedules.register(commands)
    tools.register(commands)
    workflows.register(commands)
    rate_limits.register(commands)
    return parser


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the commands' descriptions in one column (argparse leaves the indentation of
    sub-commands out when it measures them)."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=30)

    def add_argument(self, action: argparse.Action) -> None:
        super().add_argument(action)
        if isinstance(action, argparse._SubParsersAction) and action.help != argparse.SUPPRESS:
            longest = max((len(name) for name in action.choices), default=0)
            self._action_max_length = max(
                self._action_max_length, longest + self._current_indent + self._indent_increment
            )


def configure_logging(level: str, *, as_json: bool) -> None:
    """structlog to stderr at ``level``, as console lines or JSON (the CLI is an application:
    it may configure structlog; the library never does)."""
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            *(() if as_json else (terminal_safe_event,)),  # JSON escapes them itself
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Runs ``sqlxmq`` with ``argv`` (default: the command line); returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error (already printed)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.command is None:
        err("sqlxmq: error: no command given (see `sqlxmq --help` for the commands)")
        return EXIT_USAGE
    ctx = Context(dsn_option=args.dsn, json=args.json, debug=args.debug)
    level = "debug" if args.debug else getattr(args, "log_level", "warning")
    configure_logging(level, as_json=args.json)
    try:
        return int(args.handler(ctx, args))
    except KeyboardInterrupt:
        err("sqlxmq: interrupted")
        return EXIT_SIGINT
    except BrokenPipeError:  # e.g. `sqlxmq jobs | head`: stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_ERROR
    except Exception as exc:
        conninfo = ctx._conninfo or args.dsn
        message, code = describe_error(exc, conninfo)
        if args.debug:
            traceback.print_exc()
        err(f"sqlxmq: error: {message}")
        return code
