"""``sqlxmq demo`` and ``sqlxmq dashboard``."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import ipaddress
import os
import sys
from typing import Protocol

from ._common import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    Commands,
    Context,
    add_command,
    err,
    port_number,
    positive_int,
)

__all__ = ["TOKEN_ENV", "register"]

TOKEN_ENV = "SQLXMQ_DASHBOARD_TOKEN"  # noqa: S105 - the name of a variable


class _Serve(Protocol):
    """``sqlxmq_py.web.serve``: serves the dashboard until interrupted."""

    def __call__(
        self,
        conninfo: str,
        *,
        host: str = ...,
        port: int = ...,
        token: str | None = ...,
        read_conninfo: str | None = ...,
    ) -> None: ...


def register(commands: Commands) -> None:
    """Adds the ``demo`` and ``dashboard`` commands."""
    demo = add_command(
        commands,
        "demo",
        summary="run the guided tour: spawn, run and report a mix of jobs",
        description=(
            "Migrates the database, spawns a mix of jobs (async, threaded, retried,\n"
            "ordered, and one that always fails) in channels named demo-*, runs them with\n"
            "a progress bar and reports what happened. It only touches demo-* channels.\n"
            "Exits 0 when exactly the one expected job failed."
        ),
    )
    demo.add_argument(
        "--jobs",
        type=positive_int,
        default=300,
        metavar="N",
        help="how many jobs to spawn (default %(default)s)",
    )
    demo.set_defaults(handler=run_demo_command, log_level="critical")  # failures are the point

    dashboard = add_command(
        commands,
        "dashboard",
        summary="serve the web dashboard (needs sqlxmq_py[dashboard])",
        description=(
            "Serves the web dashboard until interrupted. It needs the dashboard extra:\n"
            "pip install 'sqlxmq_py[dashboard]'. Protect it with a token when it listens\n"
            f"beyond this machine (--token, or ${TOKEN_ENV})."
        ),
    )
    dashboard.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default %(default)s)"
    )
    dashboard.add_argument(
        "--port", type=port_number, default=8040, help="port to listen on (default %(default)s)"
    )
    dashboard.add_argument(
        "--token",
        default=None,
        help=f"require this bearer token (default: ${TOKEN_ENV}, which unlike an option is not "
        "visible to other users in `ps`; none: no authentication)",
    )
    dashboard.add_argument(
        "--read-dsn",
        default=None,
        metavar="DSN",
        help="a second server, typically a streaming replica, for every read (pages, the API's "
        "reads, /metrics); changes still go to --dsn. Pages say how fresh it is",
    )
    dashboard.set_defaults(handler=run_dashboard)


def run_demo_command(ctx: Context, args: argparse.Namespace) -> int:
    """Runs the demo tour on the database."""
    from ..demo import run_demo

    conninfo = ctx.conninfo()
    err(f"Running the demo with {args.jobs} jobs on {ctx.database()}")
    failed = asyncio.run(run_demo(conninfo, args.jobs, sys.stdout))
    return EXIT_OK if failed == 1 else EXIT_ERROR


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run_dashboard(ctx: Context, args: argparse.Namespace) -> int:
    """Serves the dashboard (blocking)."""
    try:
        # imported here, so that the CLI works without the dashboard extra
        serve: _Serve = importlib.import_module("sqlxmq_py.web").serve
    except (ImportError, AttributeError) as exc:
        raise CliError(
            "the dashboard is not installed: pip install 'sqlxmq_py[dashboard]' "
            f"({type(exc).__name__}: {exc})",
            EXIT_USAGE,
        ) from exc
    token = args.token if args.token is not None else os.environ.get(TOKEN_ENV) or None
    if not _is_loopback(args.host):
        err(
            f"sqlxmq: warning: the dashboard listens on {args.host}: anyone who can reach it "
            "can read every job, payload and error; put it behind your own authentication"
            + ("" if token else f" (without --token or ${TOKEN_ENV} it cannot change anything)")
        )
    conninfo = ctx.conninfo()
    err(f"Dashboard for {ctx.database()} on http://{args.host}:{args.port}/ (Ctrl-C to stop)")
    serve(conninfo, host=args.host, port=args.port, token=token, read_conninfo=args.read_dsn)
    return EXIT_OK
