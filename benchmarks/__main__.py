"""Runs the benchmarks and prints one table: ``python -m benchmarks [--dsn DSN] [--quick]``.

Every sqlxmq_py figure is printed beside a plain-psycopg baseline measured in the same run (the
floor loop, or raw SQL for the spawn rows), and beside pgqueuer and procrastinate where they
are compared. Progress goes to stderr, the
machine description and the table to stdout.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import structlog

from . import bulk, drain, drain_default, latency, rate_limits, spawn
from ._report import Row, render_table
from ._support import (
    DEFAULT_SERVER_DSN,
    BenchmarkError,
    Settings,
    describe_machine,
    machine_info,
)

SCENARIOS = (
    "spawn",
    "enqueue",
    "bulk",
    "drain-default",
    "drain-scale",
    "latency",
    "drain",
    "logging",
    "drain2",
    "memory",
    "peers",
    "rate-limits",
)
"""Names for ``--only``, in the order they run."""

DEFAULT_DRAIN_SCENARIOS = ("drain-default", "drain-scale")
"""The scenarios benchmarks/drain_default.py measures."""

DRAIN_SCENARIOS = ("drain", "logging", "drain2", "memory", "peers")
"""The scenarios benchmarks/drain.py measures (best of several settings, and memory)."""

ENV_DSN = "SQLXMQ_BENCH_DSN"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmarks sqlxmq_py against a plain-psycopg floor loop, raw SQL, pgqueuer "
        "and procrastinate.",
    )
    parser.add_argument(
        "--dsn",
        default=os.environ.get(ENV_DSN) or DEFAULT_SERVER_DSN,
        help=f"a server to create the benchmark databases on (default ${ENV_DSN}, else "
        f"{DEFAULT_SERVER_DSN}); the role must be allowed to create databases",
    )
    parser.add_argument(
        "--embedded",
        action="store_true",
        help="use sqlxmq_py's embedded PostgreSQL instead of --dsn",
    )
    parser.add_argument(
        "--embedded-dir",
        type=Path,
        default=None,
        help="data directory of the embedded server (default: sqlxmq_py's)",
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help=f"run only these scenarios (repeatable, or comma-separated): {', '.join(SCENARIOS)}",
    )
    parser.add_argument("--quick", action="store_true", help="smaller runs (about 1-2 minutes)")
    parser.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="measure each throughput figure this many times and report the median "
        "(default 3, 1 with --quick)",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures here")
    parser.add_argument("--verbose", action="store_true", help="print every measurement")
    return parser.parse_args(argv)


def _selected(only: list[str] | None) -> list[str]:
    if not only:
        return list(SCENARIOS)
    names = {name.strip() for item in only for name in item.split(",") if name.strip()}
    unknown = names - set(SCENARIOS)
    if unknown:
        raise SystemExit(f"unknown scenario(s) {sorted(unknown)}; choose from {SCENARIOS}")
    return [name for name in SCENARIOS if name in names]


def _server_dsn(args: argparse.Namespace) -> str:
    if not args.embedded:
        return str(args.dsn)
    from sqlxmq_py import embedded

    return embedded.start(args.embedded_dir)


def main(argv: list[str] | None = None) -> int:
    """Runs the selected scenarios; returns the exit status."""
    try:
        return _main(argv)
    except (BenchmarkError, psycopg.Error) as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1


def _main(argv: list[str] | None) -> int:
    args = _parse(argv)
    # the library logs through structlog; at INFO it would log a line per migration and job
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    selected = _selected(args.only)
    repeat = args.repeat if args.repeat is not None else (1 if args.quick else 3)
    settings = Settings(
        server_dsn=_server_dsn(args), quick=args.quick, repeat=max(1, repeat), verbose=args.verbose
    )
    info = machine_info(settings.server_dsn)
    started = time.perf_counter()

    steps: list[tuple[set[str], Callable[[], list[Row]]]] = [
        ({"spawn"}, lambda: spawn.run_single(settings)),
        ({"enqueue"}, lambda: spawn.run_enqueue(settings)),
        ({"bulk"}, lambda: bulk.run(settings)),
        (set(DEFAULT_DRAIN_SCENARIOS), lambda: drain_default.run(settings, set(selected))),
        ({"latency"}, lambda: latency.run(settings)),
        (set(DRAIN_SCENARIOS), lambda: drain.run(settings, set(selected))),
        ({"rate-limits"}, lambda: rate_limits.run(settings)),
    ]
    rows: list[Row] = []
    for names, step in steps:
        if names & set(selected):
            rows.extend(step())
    rows.sort(key=lambda row: row.number)
    elapsed = time.perf_counter() - started

    print(describe_machine(info))
    print(
        f"run:        {', '.join(selected)}; {'quick, ' if args.quick else ''}median of "
        f"{settings.repeat} run(s) per throughput figure; {elapsed:.0f} s\n"
    )
    print(render_table(rows))
    if args.json is not None:
        document: dict[str, Any] = {
            "machine": info,
            "settings": {"quick": args.quick, "repeat": settings.repeat, "scenarios": selected},
            "seconds": elapsed,
            "rows": [row.as_json() for row in rows],
        }
        args.json.write_text(json.dumps(document, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
