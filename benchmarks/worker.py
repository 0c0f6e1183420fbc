"""A queue worker in its own process: ``python -m benchmarks.worker SYSTEM --dsn DSN``.

The benchmark drives it through stdin and stdout, one JSON object per line on stdout:

- it prints ``{"event": "ready"}`` once imported and configured (nothing connected yet);
- on ``go`` it starts the queue's worker and prints ``{"event": "started"}``;
- on ``stop`` (or end of input) it stops the worker gracefully and prints
  ``{"event": "stopped", "starts": {seq: time}}``, the wall-clock start time of every latency
  probe it ran.

Logging is kept at WARNING for every library unless the options say otherwise (``"logging"``:
``warning``, ``unconfigured`` or ``off``; see :func:`_configure_logging`). The event loop is
the ``"loop"`` option (``uvloop`` or ``asyncio``); the benchmark gives every system the same.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

import structlog

from .systems import SYSTEMS, load


def _say(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


async def _next_command() -> str:
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    return line.strip() or "stop"


async def _serve(system_name: str, dsn: str, options: dict[str, Any]) -> None:
    starts: dict[int, float] = {}

    def on_start(seq: int) -> None:
        starts[seq] = time.time()

    worker = load(system_name).worker(dsn, options, on_start)
    _say("ready")
    if await _next_command() != "go":
        _say("stopped", starts={})
        return
    await worker.start()
    _say("started")
    while await _next_command() != "stop":
        pass
    await worker.stop()
    _say("stopped", starts=starts)


def _runner(loop: str) -> Callable[[Coroutine[Any, Any, None]], None]:
    if loop == "uvloop":
        import uvloop

        return uvloop.run
    return asyncio.run


LIBRARY_LOGGERS = ("sqlxmq_py", "pgqueuer", "procrastinate", "psycopg", "asyncpg", "asyncio")
"""Set to WARNING by name as well as through the root logger, in case a library sets a level of
its own on import."""


def _configure_logging(mode: str) -> None:
    """``warning``: the standard module (root and every library's logger) and structlog at
    WARNING (every system's default here);
    ``unconfigured``: nothing configured, as in an application that never sets logging up;
    ``off``: ``logging.disable()``, the floor for what logging can cost."""
    if mode == "warning":
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
        for name in LIBRARY_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
        structlog.configure(
            wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
            logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        )
    elif mode == "off":
        logging.disable(logging.CRITICAL)
    elif mode != "unconfigured":
        raise SystemExit(f"unknown logging mode {mode!r}: warning, unconfigured or off")


def main() -> None:
    """Parses the command line and serves the benchmark until told to stop."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("system", choices=sorted(SYSTEMS))
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--options", default="{}", help="worker options, as a JSON object")
    args = parser.parse_args()
    options = json.loads(args.options)
    _configure_logging(options.pop("logging", "warning"))
    _runner(options.pop("loop", "asyncio"))(_serve(args.system, args.dsn, options))


if __name__ == "__main__":
    main()
